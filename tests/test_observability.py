"""The terminal progress line, TensorBoard summaries and tools/plot_run.py."""

import io
import json
import os
import pty
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import ROOT
from PIL import Image

from training.log import TrainLog
from training.progress import ProgressLine, format_eta, progress_line, wants_progress
from training.summaries import attach_summaries


def _read_all(fd):
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        if len(data) < 65536:
            break
    return b"".join(chunks).decode()


def test_progress_line_on_a_terminal():
    master, slave = pty.openpty()
    try:
        terminal = os.fdopen(slave, "w", buffering=1)
        assert wants_progress(terminal) or os.environ.get("CI")
        steps = iter([10, 20])
        progress = ProgressLine(terminal, read_step=lambda: next(steps), total_steps=100, global_batch=8,
                                steps_per_epoch=10)
        log = TrainLog(None, stream=progress)
        progress.draw()
        first = _read_all(master)
        assert first.startswith("\r\033[K") and "step 10/100  epoch 1.0" in first and "ETA ?" in first
        log.info("step:    20, a log line")
        shown = _read_all(master)
        assert shown.startswith("\r\033[Kstep:    20, a log line")  # the progress line is erased first
        progress.draw()
        text = _read_all(master)
        assert "step 20/100  epoch 2.0" in text and "img/s" in text and "ETA" in text
        progress.stop()
        assert _read_all(master).endswith("\r\033[K")
    finally:
        os.close(master)
        terminal.close()


def test_no_progress_line_in_files_or_pipes(tmp_path):
    with open(tmp_path / "out.txt", "w") as f:
        assert not wants_progress(f)
        assert progress_line(f, read_step=lambda: 0, total_steps=1, global_batch=1, steps_per_epoch=1) is None
    assert not wants_progress(io.StringIO())


def test_rate_and_eta():
    progress = ProgressLine(io.StringIO(), read_step=lambda: 0, total_steps=1000, global_batch=32,
                            steps_per_epoch=100)
    progress.render(100, now=50.0)
    text = progress.render(300, now=60.0)  # 200 steps in 10 s: 640 img/s, 700 steps left: 35 s
    assert text == "step 300/1000  epoch 3.0  640.0 img/s  ETA 0:00:35"
    assert format_eta(3725) == "1:02:05" and format_eta(float("nan")) == "?"


def test_summaries_from_log_records(tmp_path):
    log = TrainLog(str(tmp_path), "x.log")
    listener = attach_summaries(log, str(tmp_path))
    log.step(step=10, epoch=0.5, fps=123.0, loss=2.5, total_loss=2.75, lr=0.01, batch_time=1.0)
    log.metrics({"type": "eval", "step": 10, "top1": 40.0, "top5": 80.0, "loss": 1.5})
    log.metrics({"type": "note", "step": 10, "text": "ignored"})
    listener.close()
    log.close()

    def values(kind):
        found = {}
        directory = tmp_path / "tensorboard" / kind
        for name in os.listdir(directory):
            for event in tf.compat.v1.train.summary_iterator(str(directory / name)):
                for v in event.summary.value:
                    assert v.metadata.plugin_data.plugin_name == "scalars"
                    found[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
        return found

    assert values("train") == {("loss", 10): 2.5, ("total_loss", 10): 2.75, ("lr", 10): pytest.approx(0.01),
                               ("images_per_second", 10): 123.0}
    assert values("eval") == {("top1", 10): 40.0, ("top5", 10): 80.0, ("loss", 10): 1.5}
    assert attach_summaries(log, None) is None


def test_plot_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [dict(type="train", step=s, loss=3.0 / s, total_loss=3.5 / s, lr=0.01 * s) for s in range(1, 6)]
    records += [dict(type="eval", step=s, top1=10.0 * s, top5=20.0 * s, loss=2.0 / s) for s in (2, 4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = subprocess.run([sys.executable, "tools/plot_run.py", f"--run={run}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with Image.open(run / "curves.png") as png:
        assert png.format == "PNG" and png.size == (800, 900)
        assert len(png.convert("RGB").getcolors(1 << 20)) > 20  # curves drawn, not a blank canvas

    (run / "metrics.jsonl").write_text('{"type": "train", "step": 1}\nnot json\n')
    proc = subprocess.run([sys.executable, "tools/plot_run.py", f"--run={run}", f"--output={tmp_path}/x.png"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "metrics.jsonl:2: not a JSON line" in proc.stderr
    assert not (tmp_path / "x.png").exists()
