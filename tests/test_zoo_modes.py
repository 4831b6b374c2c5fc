"""Zoo models through every mode AlexNet runs in: batch norm, an auxiliary head and attention end to end.

Three representative architectures (batch norm and squeeze-excitation: mobilenet_v3_small; an auxiliary
head: inception_v3; attention with class token: vit_b_16) run ``train_and_evaluate``, ``evaluate``,
``predict`` and ``export`` in real ``main.py`` processes on synthetic data; the batch-norm model also
trains on two worker processes and on the NPU path under the adapter stand-in. The inception_v3 and
vit_b_16 runs take minutes on two cores and are marked slow.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from npu_testutil import ROOT, standin_env

import zoo
from backends.cpu import CPUBackend
from evaluation.evaluator import Evaluator
from weights.checkpoint import load_weights

SIZES = {"mobilenet_v3_small": 32, "inception_v3": 75, "vit_b_16": 32}
CLASSES = 5


def _common(model):
    return [f"--model={model}", "--backend=cpu", "--synthetic", f"--image_size={SIZES[model]}",
            f"--num_classes={CLASSES}", "--batch_size=2", "--synthetic_train_images=16", "--synthetic_val_images=6",
            "--warmup_epochs=0", "--lr=0.001", "--seed=3"]


def _jpeg(path):
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, size=(90, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.mark.slow  # every mode of a run is checked in the default suite by tests/test_later_modes.py
@pytest.mark.parametrize("model", list(SIZES))
def test_train_and_evaluate_predict_export(model, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_main(*_common(model), "--mode=train_and_evaluate", "--max_train_steps=4", "--iterations_per_loop=2",
                    "--save_summary_steps=2", "--save_checkpoints_steps=4", "--epochs_between_evals=0",
                    f"--log_dir={run_dir}")
    rows = re.findall(r"^\s*4\s+0\.5\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s", proc.stdout, re.M)
    assert rows and "Finished evaluation" in proc.stdout, proc.stdout[-2000:]
    top1, top5, loss = (float(x) for x in rows[-1])
    assert 0 <= top1 <= top5 <= 100 and np.isfinite(loss)

    # Evaluating the checkpoint again gives the same row: evaluation never updates batch-norm statistics.
    again = run_main(*_common(model), "--mode=evaluate", f"--checkpoint_dir={run_dir}", f"--log_dir={tmp_path / 'e'}")
    assert re.findall(r"^\s*4\s+0\.5\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s", again.stdout, re.M)[-1] == rows[-1]

    image = _jpeg(tmp_path / "x.jpg")
    predicted = run_main(*_common(model), "--mode=predict", f"--checkpoint_dir={run_dir}", f"--image={image}")
    top = [(float(p), int(label)) for p, label in re.findall(r"^\s+\d\. ([\d.]+)\s+label (\d+)$", predicted.stdout,
                                                            re.M)]
    assert len(top) == 5 and abs(sum(p for p, _ in top) - 1.0) < 1e-4

    export_dir = tmp_path / "export"
    run_main(*_common(model), "--mode=export", f"--checkpoint_dir={run_dir}", f"--export_dir={export_dir}")
    reload = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        loaded = tf.saved_model.load({str(export_dir)!r})
        out = loaded.signatures["serving_default"](image_bytes=tf.constant([open({image!r}, "rb").read()]))
        print(json.dumps(dict(classes=out["top_k_classes"].numpy().tolist()[0],
                              probs=out["top_k_probabilities"].numpy().tolist()[0])))
    """)
    served = subprocess.run([sys.executable, "-c", reload], capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    served = json.loads(served.stdout.strip().splitlines()[-1])
    assert served["classes"] == [label for _, label in top]  # the main head only, as predict
    assert served["probs"] == pytest.approx([p for p, _ in top], abs=2e-5)


def test_evaluation_leaves_batch_norm_statistics_alone():
    backend = CPUBackend()
    backend.setup()
    model = zoo.create_model("mobilenet_v3_small", num_classes=CLASSES, image_size=32)
    stats = [v for v in model.non_trainable_weights if "moving" in (getattr(v, "path", None) or v.name)]
    before = [v.numpy().copy() for v in stats]
    images = tf.random.stateless_normal((4, 32, 32, 3), seed=(1, 1))
    dataset = tf.data.Dataset.from_tensors((images, tf.constant([0, 1, 2, 3]))).repeat(2)
    Evaluator(zoo.inference_model(model), backend, num_classes=CLASSES).run(lambda ctx: dataset)
    assert stats and all(np.array_equal(b, v.numpy()) for b, v in zip(before, stats))
    model(images, training=True)  # training mode does update them (the check above could fail)
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, stats))


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_batch_norm_model_on_two_workers(tmp_path):
    proc = run_main(*_common("mobilenet_v3_small"), "--rank_size=2", "--max_train_steps=3", "--iterations_per_loop=3",
                    "--save_summary_steps=3", f"--log_dir={tmp_path}")
    sums = re.findall(r"^\[rank (\d)\] weights identical on all 2 ranks: checksum (\S+)$", proc.stdout, re.M)
    assert sorted(r for r, _ in sums) == ["0", "1"] and sums[0][1] == sums[1][1]
    fresh = zoo.create_model("mobilenet_v3_small", num_classes=CLASSES, image_size=32)
    assert len(load_weights(fresh, str(tmp_path / "0")).restored) == len(fresh.weights)


@pytest.mark.keras2
def test_batch_norm_model_on_the_npu_path(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    args = [a for a in _common("mobilenet_v3_small") if a != "--backend=cpu"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--backend=npu", *args, "--max_train_steps=4",
                           "--iterations_per_loop=2", "--save_summary_steps=2", "--log_dir=run"],
                          cwd=str(tmp_path), env=standin_env(calls), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(re.findall(r"^step:\s+[24], ", proc.stdout, re.M)) == 2
