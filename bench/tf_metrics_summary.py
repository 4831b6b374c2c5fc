"""Turns a main.py run's ``metrics.jsonl`` into one JSON line of throughput (for bench scripts).

    python bench/tf_metrics_summary.py METRICS_JSONL --global_batch=B --warmup_steps=N [--key=value ...]

images_per_second = global_batch x (steps of the intervals that end after ``--warmup_steps``) /
their seconds, as the trainer timed them (checkpoints and evaluation excluded). Other
``--key=value`` arguments are copied into the line.
"""

from __future__ import annotations

import json
import sys


def summarise(path: str, global_batch: int, warmup_steps: int) -> dict:
    """Throughput of the logged intervals after ``warmup_steps`` in a metrics.jsonl file."""
    with open(path) as f:
        train = [r for r in (json.loads(line) for line in f if line.strip()) if r.get("type") == "train"]
    timed = [r for r in train if r["step"] > warmup_steps]
    if not timed:
        raise SystemExit(f"{path}: no logged interval ends after step {warmup_steps}; train longer")
    start = max([r["step"] for r in train if r["step"] <= warmup_steps], default=0)
    seconds = sum(r["interval_seconds"] for r in timed)
    steps = timed[-1]["step"] - start
    return dict(images_per_second=round(global_batch * steps / seconds, 1), unit="img/s", steps_timed=steps,
                warmup_steps_excluded=start, final_loss=round(timed[-1]["loss"], 4))


def main(argv) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    options = dict(arg.lstrip("-").partition("=")[::2] for arg in argv[2:])
    global_batch = int(options.pop("global_batch"))
    warmup = int(options.pop("warmup_steps", 0))
    line = {k: int(v) if v.isdigit() else v for k, v in options.items()}
    line.update(summarise(argv[1], global_batch, warmup))
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv)
