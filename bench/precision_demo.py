"""Accuracy and speed of fp32 against mixed bf16 on the embedded demo data, on this CPU.

    .venv/bin/python bench/precision_demo.py [--precisions=fp32,bf16] [-- extra main.py flags]

Runs ``main.py --flagfile=configs/demo_cpu.flags`` (the embedded demo: train_and_evaluate on the
digits) once per precision with the same seed, then prints one JSON line per precision:
validation top-1/top-5 and loss at the end, training throughput (median over the log intervals
after the first, which includes tracing) and the wall time of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The embedded demo exactly as `make demo` runs it (configs/demo_cpu.flags); --precision and --log_dir
# are added after it, and later flags win.
DEMO_FLAGS = ["--flagfile=configs/demo_cpu.flags"]


def run(precision: str, extra, log_dir: str) -> dict:
    cmd = [sys.executable, "main.py", *DEMO_FLAGS, *extra, f"--precision={precision}", f"--log_dir={log_dir}"]
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in open(os.path.join(log_dir, "metrics.jsonl"))]
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    if not evals:
        raise SystemExit(f"no evaluation record in {log_dir}/metrics.jsonl")
    speeds = [r["images_per_second"] for r in train[1:]] or [train[-1]["images_per_second"]]
    last = evals[-1]
    return dict(bench="precision_demo", precision=precision, top1=last["top1"], top5=last["top5"],
                eval_loss=last.get("loss"), steps=train[-1]["step"], final_train_loss=train[-1]["loss"],
                train_images_per_second=round(statistics.median(speeds), 1), wall_seconds=round(seconds, 1),
                load_avg_1min=round(os.getloadavg()[0], 2), command=" ".join(cmd[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("extra", nargs="*", help="more main.py flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="precision-demo-") as tmp:
        for precision in args.precisions.split(","):
            print(json.dumps(run(precision, args.extra, os.path.join(tmp, precision))), flush=True)


if __name__ == "__main__":
    main()
