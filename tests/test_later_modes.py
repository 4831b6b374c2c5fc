"""Evaluate, predict and export read the run's own configuration: a run trained at 64 px on 10 classes is
evaluated, predicted and exported at 64 px with 10 classes without repeating its flags."""

import json
import os

import numpy as np
import pytest
from conftest import run_main
from PIL import Image

from evaluation import eval_table

TRAIN = ["--model=resnet18", "--backend=cpu", "--synthetic", "--image_size=64", "--num_classes=10", "--batch_size=2",
         "--max_train_steps=2", "--save_summary_steps=2", "--synthetic_train_images=40", "--synthetic_val_images=6",
         "--lr=0.01"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("run")
    run_main(*TRAIN, f"--log_dir={log_dir}")
    return log_dir


def test_config_json_holds_what_the_run_decided(run):
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["model"]["image_size"] == 64 and saved["config"]["model"]["num_classes"] == 10
    assert saved["derived"]["global_batch"] == 2 and saved["derived"]["num_train_examples"] == 40
    assert saved["sources"]["image_size"] == "command line"
    assert os.path.exists(run / "model.ckpt-2.settings.json")


def test_evaluate_uses_the_runs_size_classes_and_batch(run, tmp_path):
    out = run_main("--mode=evaluate", f"--log_dir={run}", "--backend=cpu")
    rows = [eval_table.parse_row(line) for line in out.stdout.splitlines() if eval_table.parse_row(line)]
    # Epoch = step x the run's global batch / the run's training-set size: 2 x 2 / 40.
    assert [(r["step"], r["epoch"]) for r in rows] == [(2, 0.1)]
    assert f"Settings of the run from {run}/config.json" in out.stderr


def test_a_setting_that_defines_the_checkpoint_cannot_change(run):
    out = run_main("--mode=evaluate", f"--log_dir={run}", "--backend=cpu", "--image_size=96", check=False)
    assert out.returncode != 0
    assert "--image_size=96 (command line) differs from the run's 64" in out.stderr
    assert len(out.stderr.strip().splitlines()[-1]) > 0 and "Traceback" not in out.stderr


def test_safe_settings_may_change_and_the_log_says_so(run):
    # The run's own value of a fixed setting is accepted; a data setting may change, and is named.
    out = run_main("--mode=evaluate", f"--log_dir={run}", "--backend=cpu", "--eval_batch_size=3",
                   "--image_size=64", "--synthetic_val_images=4")
    note = next(line for line in out.stderr.splitlines() if line.startswith("Settings of the run from"))
    assert note.endswith("the command line overrides: --synthetic_val_images"), note
    assert "Validation dataset size: 4" in out.stdout
    rows = [eval_table.parse_row(line) for line in out.stdout.splitlines() if eval_table.parse_row(line)]
    assert [r["step"] for r in rows] == [2]


def test_predict_and_export_use_the_runs_size_and_classes(run, tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(image)
    out = run_main("--mode=predict", f"--log_dir={run}", "--backend=cpu", f"--image={image}")
    assert "10 classes" in out.stdout
    export_dir = tmp_path / "export"
    run_main("--mode=export", f"--log_dir={run}", "--backend=cpu", f"--export_dir={export_dir}")
    serving = json.loads((export_dir / "serving_config.json").read_text())
    assert (serving["image_size"], serving["num_classes"]) == (64, 10)
