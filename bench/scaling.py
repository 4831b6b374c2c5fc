"""Multi-worker scaling on this CPU: 2 worker processes with one core each against 1 with one core.

    .venv/bin/python bench/scaling.py [--image_size=224 --batch_size=128 --steps=12 --log_every=3 --repeats=2]
    .venv/bin/python bench/scaling.py --layouts=2 -- --all_reduce_pack_mb=0   # extra main.py flags after --

Both layouts train synthetic AlexNet with the same per-rank batch (weak scaling, as when adding
devices to the recipe): 1 worker pinned to one core, then ``--rank_size=2 --cpus_per_rank=1``
(MultiWorkerMirroredStrategy, ring all-reduce over loopback), each pinned to its own core. The
throughput of a run is the median of rank 0's logged intervals after the first (which includes
tracing). Prints one JSON line per run and a summary line with

    efficiency = images/s (2 workers) / (2 x images/s (1 worker))

using the best run of each layout (other processes on a shared machine only slow runs down).
The 1-minute load average before and after each run is recorded: on a machine shared with
other work, figures are only comparable when the load is low.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from backends.launcher import launch  # noqa: E402


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(workers: int, cores, args, log_dir: str) -> dict:
    flags = [
        "main.py", "--backend=cpu", "--synthetic", f"--image_size={args.image_size}",
        f"--batch_size={args.batch_size}", f"--num_classes={args.num_classes}", f"--precision={args.precision}",
        f"--max_train_steps={args.steps}", f"--iterations_per_loop={args.log_every}",
        f"--save_summary_steps={args.log_every}", "--nodo_checkpoint", "--warmup_epochs=0", "--lr=0.001",
        f"--rank_size={workers}", f"--log_dir={log_dir}", *args.extra,
    ]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    if workers == 1:
        # One process pinned to one core, started by the same launcher that starts the workers.
        code = launch([[sys.executable, *flags]], cpu_sets=[cores[:1]], cwd=ROOT, stream=open(os.devnull, "w"))
        metrics = os.path.join(log_dir, "metrics.jsonl")
    else:
        code = launch([[sys.executable, *flags, "--cpus_per_rank=1"]], cwd=ROOT, stream=open(os.devnull, "w"))
        metrics = os.path.join(log_dir, "0", "metrics.jsonl")
    seconds = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"{workers}-worker run failed with exit code {code}; see {log_dir}")
    train = [json.loads(line) for line in open(metrics)]
    train = [r for r in train if r.get("type") == "train"]
    speeds = [r["images_per_second"] for r in train[1:]]
    if not speeds:
        raise SystemExit(f"too few log intervals in {metrics}: raise --steps or lower --log_every")
    ips = statistics.median(speeds)
    return dict(bench="scaling", workers=workers, cores_per_worker=1, per_rank_batch=args.batch_size,
                global_batch=args.batch_size * workers, image_size=args.image_size, precision=args.precision,
                images_per_second=round(ips, 2), images_per_second_per_worker=round(ips / workers, 2),
                intervals=[round(s, 2) for s in speeds], load_avg_1min_before=round(load_before, 2),
                load_avg_1min_after=round(os.getloadavg()[0], 2), wall_seconds=round(seconds, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=128, help="per rank (the recipe's per-device batch)")
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log_every", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layouts", default="1,2", help="worker counts to run, e.g. 2 to rerun only 2 workers")
    parser.add_argument("extra", nargs="*", help="more main.py flags, after --")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit(f"needs 2 cores, this process may use {len(cores)}")
    best = {}
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for repeat in range(args.repeats):
            for workers in [int(w) for w in args.layouts.split(",")]:
                result = run(workers, cores, args, os.path.join(tmp, f"{workers}w-{repeat}"))
                result.update(repeat=repeat, cpu=cpu_model())
                print(json.dumps(result), flush=True)
                if result["images_per_second"] > best.get(workers, {}).get("images_per_second", 0):
                    best[workers] = result
    if set(best) != {1, 2}:
        return
    efficiency = best[2]["images_per_second"] / (2 * best[1]["images_per_second"])
    print(json.dumps(dict(bench="scaling_summary", efficiency=round(efficiency, 3), target=0.9,
                          one_worker_images_per_second=best[1]["images_per_second"],
                          two_workers_images_per_second=best[2]["images_per_second"],
                          per_rank_batch=args.batch_size, image_size=args.image_size, precision=args.precision,
                          command="bench/scaling.py " + " ".join(sys.argv[1:]))), flush=True)


if __name__ == "__main__":
    main()
