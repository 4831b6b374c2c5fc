"""Evaluation: the recipe's table, exact counts (partial batches, shards), train_and_evaluate, TensorBoard."""

import json
import os
import subprocess
import sys
import textwrap

import eval_testutil as ev
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_main

import registry
from backends.cpu import CPUBackend
from evaluation import eval_table
from evaluation.evaluator import EvalTotals, Evaluator

EXTRA = "--extra_modules=tests/eval_testutil.py"
# The Ascend recipe's label smoothing: the loss column the hand-computed expectations use.
SMOOTHING = "--label_smoothing=0.1"
# Under identity_weights(scale=-1) the ranking is reversed; by hand (see VAL_SCORES):
# top-1 right only for example 3; top-5 right for examples 1, 3 and 5.
NEG_TOP1, NEG_TOP5 = 1, 3


@pytest.fixture(scope="module")
def backend():
    b = CPUBackend()
    b.setup()
    return b


def _model(backend, scale=1.0):
    with backend.scope():
        model = ev.scores_linear()
    ev.identity_weights(model, scale)
    return model


def _dataset():
    return registry.DATASETS.get("handmade")(recipe=registry.MODELS.metadata("scores_linear")["recipe"])


def _totals(backend, model, batch, context=None):
    dataset = _dataset()
    evaluator = Evaluator(model, backend, num_classes=ev.NUM_CLASSES, label_smoothing=0.1)
    return evaluator.run(lambda ctx: dataset.input_fn("validation", training=False, batch_size=batch,
                                                      input_context=context or ctx))


def test_table_row_is_the_seeds_format():
    seed_row = " 6300    1.0  18.502   39.33    4.78  2020-06-18 11:18:45"
    timestamp = 1592479125.0  # 2020-06-18 11:18:45 UTC
    assert eval_table.format_row(6300, 1.0, 18.502, 39.33, 4.78, timestamp) == seed_row
    wide = eval_table.format_row(187700, 150.0, 60.12, 82.06, 2.57, timestamp)
    assert wide.startswith("187700  150.0  60.120   82.06")
    parsed = eval_table.parse_row(seed_row)
    assert parsed == {"step": 6300, "epoch": 1.0, "top1": 18.502, "top5": 39.33, "loss": 4.78,
                      "time": "2020-06-18 11:18:45"}
    assert eval_table.parse_row("step:   700, epoch:  0.6") is None
    assert eval_table.HEADER == " step  epoch  top1    top5     loss   checkpoint_time(UTC)"


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
@pytest.mark.parametrize("batch", [1, 3, 4, 7, 10])  # 3 and 4 leave a partial last batch
def test_every_example_counts_once(backend, batch):
    totals = _totals(backend, _model(backend), batch)
    assert totals.examples == ev.VAL_SIZE
    assert (totals.top1_correct, totals.top5_correct) == (ev.TOP1_CORRECT, ev.TOP5_CORRECT)
    assert totals.top1 == pytest.approx(100.0 * 4 / 7)
    assert totals.loss == pytest.approx(ev.expected_loss(), rel=1e-6)


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
def test_reversed_ranking_hand_counts(backend):
    totals = _totals(backend, _model(backend, scale=-1.0), 3)
    assert (totals.examples, totals.top1_correct, totals.top5_correct) == (ev.VAL_SIZE, NEG_TOP1, NEG_TOP5)
    assert totals.loss == pytest.approx(ev.expected_loss(scale=-1.0), rel=1e-6)


@pytest.mark.keras2  # the shared code path also runs on Keras 2 (NPU adapter)
def test_shards_add_up_to_the_whole(backend):
    """Two ranks each evaluate their shard (4 and 3 examples, batch 3: both end in a partial
    batch); adding their counts gives exactly the one-shard result."""
    model = _model(backend)
    whole = _totals(backend, model, 3)
    shards = [_totals(backend, model, 3, tf.distribute.InputContext(2, i, 2)) for i in range(2)]
    assert [s.examples for s in shards] == [4, 3]
    combined = shards[0] + shards[1]
    assert (combined.examples, combined.top1_correct, combined.top5_correct) == (
        whole.examples, whole.top1_correct, whole.top5_correct)
    assert combined.loss == pytest.approx(whole.loss, rel=1e-6)
    # Averaging the shards' accuracies instead would be wrong here: (3/4 + 1/3) / 2 != 4/7.
    assert (shards[0].top1 + shards[1].top1) / 2 != pytest.approx(whole.top1)


def test_empty_totals_are_nan_not_zero():
    assert np.isnan(EvalTotals().top1) and np.isnan(EvalTotals().loss)


_MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path[:0] = [".", "tests"]
    import eval_testutil as ev, registry
    from backends.base import Backend
    from evaluation.evaluator import Evaluator

    class LogicalCPUs(Backend):
        name = "logical_cpus"
        def __init__(self, devices):
            super().__init__(rank_size=len(devices))
            self.devices = devices
        def setup(self):
            pass
        def create_strategy(self):
            if len(self.devices) == 1:
                return tf.distribute.OneDeviceStrategy(self.devices[0])
            return tf.distribute.MirroredStrategy(self.devices)

    results = {}
    for name, backend in (("one", LogicalCPUs(["/cpu:0"])), ("two", LogicalCPUs(["/cpu:0", "/cpu:1"]))):
        with backend.scope():
            model = ev.scores_linear()
        ev.identity_weights(model)
        dataset = registry.DATASETS.get("handmade")(recipe=registry.MODELS.metadata("scores_linear")["recipe"])
        replicas = backend.strategy.num_replicas_in_sync
        t = Evaluator(model, backend, num_classes=ev.NUM_CLASSES, label_smoothing=0.1).run(
            lambda ctx: dataset.input_fn("validation", training=False,
                                         batch_size=ctx.get_per_replica_batch_size(2 * replicas),
                                         input_context=ctx))
        results[name] = [replicas, t.examples, t.top1_correct, t.top5_correct, t.loss_sum]
    print(json.dumps(results))
""")


def test_two_replicas_equal_one(tmp_path):
    """MirroredStrategy over two CPU devices (batch 2 per replica: 7 examples leave one replica
    an empty last batch) counts exactly what one device counts."""
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["one"][0] == 1 and results["two"][0] == 2
    assert results["one"][1:4] == results["two"][1:4] == [ev.VAL_SIZE, ev.TOP1_CORRECT, ev.TOP5_CORRECT]
    assert results["two"][4] == pytest.approx(results["one"][4], rel=1e-6)


def _events(directory):
    """{tag: {step: value}} of the TensorBoard event files in ``directory``."""
    found = {}
    for name in sorted(os.listdir(directory)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def _table(stdout):
    lines = [line for line in stdout.splitlines() if not line.startswith(("I", "W", "E0"))]
    start = lines.index("Evaluating")
    return lines[start:]


def test_evaluate_mode_prints_the_table(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    model = ev.scores_linear()
    ev.identity_weights(model, 1.0)
    ev.save_checkpoint(model, str(ckpt_dir), 100)
    ev.identity_weights(model, -1.0)
    ev.save_checkpoint(model, str(ckpt_dir), 200)
    os.utime(ckpt_dir / "model.ckpt-100.index", (1592479125, 1592479125))  # 2020-06-18 11:18:45 UTC

    log_dir = tmp_path / "eval"
    proc = run_main(EXTRA, SMOOTHING, "--mode=evaluate", "--model=scores_linear", "--dataset=handmade", "--backend=cpu",
                    f"--checkpoint_dir={ckpt_dir}", f"--log_dir={log_dir}", "--batch_size=3")
    table = _table(proc.stdout)
    assert table[:3] == ["Evaluating", f"Validation dataset size: {ev.VAL_SIZE}", eval_table.HEADER]
    assert table[-1] == eval_table.FINISHED and len(table) == 6
    first, second = eval_table.parse_row(table[3]), eval_table.parse_row(table[4])
    # epoch = step x global batch (3) / training examples (6)
    assert table[3] == eval_table.format_row(100, 50.0, 100 * 4 / 7, 100 * 6 / 7, ev.expected_loss(), 1592479125)
    assert table[3].startswith("  100   50.0  57.143   85.71")
    assert first["time"] == "2020-06-18 11:18:45"
    assert (second["step"], second["epoch"]) == (200, 100.0)
    assert second["top1"] == round(100 * NEG_TOP1 / 7, 3) and second["top5"] == round(100 * NEG_TOP5 / 7, 2)

    records = [json.loads(line) for line in open(log_dir / "metrics.jsonl")]
    assert [(r["type"], r["step"], r["examples"], r["top1_correct"], r["top5_correct"]) for r in records] == [
        ("eval", 100, 7, 4, 6), ("eval", 200, 7, NEG_TOP1, NEG_TOP5)]
    assert records[0]["checkpoint"] == str(ckpt_dir / "model.ckpt-100")
    assert (log_dir / "scores_linear_training.log").read_text().splitlines()[-6:] == table

    events = _events(log_dir / "tensorboard" / "eval")
    assert events["top1"][100] == pytest.approx(100 * 4 / 7, rel=1e-6)
    assert events["top5"][200] == pytest.approx(100 * NEG_TOP5 / 7, rel=1e-6)
    assert events["loss"][100] == pytest.approx(ev.expected_loss(), rel=1e-5)


def test_evaluate_mode_errors(tmp_path):
    proc = run_main(EXTRA, SMOOTHING, "--mode=evaluate", "--model=scores_linear", "--dataset=handmade", "--backend=cpu",
                    f"--checkpoint_dir={tmp_path}", check=False)
    assert proc.returncode == 1 and "no checkpoint model.ckpt-N in" in proc.stderr
    model = ev.scores_linear(num_classes=4)
    ev.save_checkpoint(model, str(tmp_path), 5)
    proc = run_main(EXTRA, SMOOTHING, "--mode=evaluate", "--model=scores_linear", "--dataset=handmade", "--backend=cpu",
                    f"--checkpoint_path={tmp_path}/model.ckpt-5", f"--log_dir={tmp_path}/log", check=False)
    assert proc.returncode == 1 and "has a 4-class classifier" in proc.stderr


def test_train_and_evaluate(tmp_path):
    """Evaluations every epoch (2 steps of batch 3 over 6 examples) and at the end; the rows equal
    a later --mode=evaluate of the checkpoints written at those steps."""
    log_dir = tmp_path / "run"
    proc = run_main(EXTRA, SMOOTHING, "--mode=train_and_evaluate", "--model=scores_linear", "--dataset=handmade",
                    "--backend=cpu", f"--log_dir={log_dir}", "--batch_size=3", "--max_train_steps=5",
                    "--epochs_between_evals=1", "--save_summary_steps=1", "--save_checkpoints_steps=1",
                    "--iterations_per_loop=5", "--lr=0.01", "--warmup_epochs=0", "--max_epochs=150")
    rows = [eval_table.parse_row(line) for line in proc.stdout.splitlines()]
    steps = [r["step"] for r in rows if r]
    assert steps == [2, 4, 5] + [2, 4, 5]  # live rows, then the whole table again at the end
    assert proc.stdout.rstrip().endswith(eval_table.FINISHED)
    live = [line for line in proc.stdout.splitlines() if eval_table.parse_row(line)][:3]

    again = run_main(EXTRA, SMOOTHING, "--mode=evaluate", "--model=scores_linear", "--dataset=handmade",
                     "--backend=cpu", f"--checkpoint_dir={log_dir}", f"--log_dir={tmp_path / 'again'}",
                     "--batch_size=3")
    rows_again = {eval_table.parse_row(line)["step"]: line for line in again.stdout.splitlines()
                  if eval_table.parse_row(line)}
    assert [rows_again[s] for s in (2, 4, 5)] == live

    train = _events(log_dir / "tensorboard" / "train")
    assert set(train) == {"loss", "total_loss", "lr", "images_per_second"}
    assert sorted(train["loss"]) == [1, 2, 3, 4, 5]
    assert train["lr"][5] == pytest.approx(0.01 * (1 + np.cos(np.pi * 2 / 150)) / 2, rel=1e-5)  # epoch 2 of 150
    evals = _events(log_dir / "tensorboard" / "eval")
    assert sorted(evals["top1"]) == [2, 4, 5] and set(evals) == {"top1", "top5", "loss"}
    records = [json.loads(line) for line in open(log_dir / "metrics.jsonl")]
    assert [r["step"] for r in records if r["type"] == "eval"] == [2, 4, 5]
    assert all(r["examples"] == ev.VAL_SIZE for r in records if r["type"] == "eval")

    # Run again (same settings: a changed lr would be refused, docs/failures.md): nothing left to train,
    # so the last checkpoint is evaluated once more.
    rerun = run_main(EXTRA, SMOOTHING, "--mode=train_and_evaluate", "--model=scores_linear", "--dataset=handmade",
                     "--backend=cpu", f"--log_dir={log_dir}", "--batch_size=3", "--max_train_steps=5", "--lr=0.01",
                     "--warmup_epochs=0", "--max_epochs=150")
    assert "Nothing to train" in rerun.stdout
    assert [line for line in rerun.stdout.splitlines() if eval_table.parse_row(line)] == [live[2]]
    assert rerun.stdout.rstrip().endswith(eval_table.FINISHED)


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_two_worker_processes_count_like_one(tmp_path):
    """--rank_size=2: two processes under MultiWorkerMirroredStrategy each read their shard (4 and 3
    examples, batch 2: both end in a partial batch); both print the one-process numbers."""
    model = ev.scores_linear()
    ev.identity_weights(model)
    ev.save_checkpoint(model, str(tmp_path / "ckpt"), 100)
    proc = run_main(EXTRA, SMOOTHING, "--mode=evaluate", "--model=scores_linear", "--dataset=handmade", "--backend=cpu",
                    "--rank_size=2", f"--checkpoint_dir={tmp_path / 'ckpt'}", f"--log_dir={tmp_path / 'eval'}",
                    "--batch_size=2")
    rows = {}
    for line in proc.stdout.splitlines():
        for rank in (0, 1):
            prefix = f"[rank {rank}] "
            if line.startswith(prefix) and eval_table.parse_row(line[len(prefix):]):
                rows[rank] = eval_table.parse_row(line[len(prefix):])
    assert sorted(rows) == [0, 1]
    for row in rows.values():
        # epoch = 100 steps x global batch 4 / 6 training examples
        assert (row["step"], row["epoch"], row["top1"], row["top5"]) == (100, 66.7, 57.143, 85.71)
        assert row["loss"] == round(ev.expected_loss(), 2)


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_a_replica_whose_shard_ran_out_does_not_run_the_model(tmp_path):
    """Two replicas, 5 images, batches of 2: replica 1's last batch is empty; all 5 count, once."""
    log_dir = tmp_path / "run"
    run_main("--synthetic", "--synthetic_val_images=5", "--synthetic_train_images=64", "--rank_size=2",
             "--nomulti_worker", "--batch_size=2", "--model=resnet18", "--image_size=32", "--max_train_steps=1",
             "--mode=train_and_evaluate", f"--log_dir={log_dir}", "--nodo_checkpoint")
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["examples"] for r in records if r["type"] == "eval"] == [5]
