"""``--normalize_on=device``: uint8 batches to the step, normalised there, train and evaluate as on the host."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main

from datasets.synthetic import SyntheticDataset
from zoo import get_recipe


def test_uint8_batches_normalise_to_what_the_host_would_hand():
    dataset = SyntheticDataset(recipe=get_recipe("resnet18").scaled(32), num_classes=10)
    images, _ = next(iter(dataset.input_fn("train", training=True, batch_size=4, normalize=False)))
    assert images.dtype == tf.uint8 and images.shape == (4, 32, 32, 3)
    normalised = dataset.normalize(images).numpy()
    mean, std = np.array(dataset.recipe.mean), np.array(dataset.recipe.std)
    np.testing.assert_allclose(normalised, (images.numpy() / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_training_and_evaluation_are_the_same_on_host_and_device(tmp_path):
    """Two steps on the demo's real JPEGs, then evaluation: the same numbers either way."""
    runs = {}
    for place in ("host", "device"):
        log_dir = tmp_path / place
        run_main("--flagfile=configs/demo_cpu.flags", "--precision=fp32", "--max_train_steps=2",
                 "--iterations_per_loop=2", "--save_summary_steps=1", "--batch_size=16", "--deterministic",
                 f"--normalize_on={place}", f"--log_dir={log_dir}", "--epochs_between_evals=100")
        runs[place] = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    host, device = runs["host"], runs["device"]
    train = [(r["step"], r["loss"]) for r in host if r["type"] == "train"]
    assert len(train) == 2
    assert [(r["step"], r["loss"]) for r in device if r["type"] == "train"] == pytest.approx(train, rel=1e-5)
    evals = [(r["examples"], r["top1_correct"], r["top5_correct"]) for r in host if r["type"] == "eval"]
    assert evals and [(r["examples"], r["top1_correct"], r["top5_correct"]) for r in device
                      if r["type"] == "eval"] == evals
