"""Draws a run's loss, learning rate and top-1 curves from its ``metrics.jsonl`` into a PNG.

    python tools/plot_run.py --run=results/1p/0                 # writes results/1p/0/curves.png
    python tools/plot_run.py --run=results/1p/0/metrics.jsonl --output=/tmp/run.png

Three panels against the global step: training ``loss`` and ``total_loss`` (with the validation
loss where the run was evaluated), the learning rate, and validation top-1 / top-5 in percent.
Several runs in one file (a resumed run appends) are drawn as one curve, sorted by step, a
later record replacing an earlier one of the same step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from atomic import publish_file  # noqa: E402

__all__ = ["PlotError", "plot", "read_metrics", "series"]


class PlotError(ValueError):
    """The metrics file cannot be plotted; the message says why."""


def read_metrics(path: str) -> List[Dict]:
    """The JSON records of ``path`` (a ``metrics.jsonl`` file or the run directory holding one).

    Raises:
        FileNotFoundError, PlotError (a line that is not JSON, with its number).
    """
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; pass --run=<log_dir> of a run (it holds metrics.jsonl).")
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PlotError(f"{path}:{number}: not a JSON line ({e.msg}).") from None
    return records


def series(records: Sequence[Dict], kind: str, field: str) -> Tuple[List[int], List[float]]:
    """(steps, values) of ``field`` in records of ``type == kind``, by step, the last record of a step winning."""
    by_step: Dict[int, float] = {}
    for r in records:
        if r.get("type") == kind and field in r and r[field] is not None and "step" in r:
            by_step[int(r["step"])] = float(r[field])
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot(records: Sequence[Dict], output: str, title: str = "") -> str:
    """Draws the three panels into ``output`` (PNG); returns its path.

    Raises:
        PlotError: no training or evaluation records at all.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    loss = series(records, "train", "loss")
    total = series(records, "train", "total_loss")
    lr = series(records, "train", "lr")
    val_loss = series(records, "eval", "loss")
    top1 = series(records, "eval", "top1")
    top5 = series(records, "eval", "top5")
    if not loss[0] and not top1[0]:
        raise PlotError("no training or evaluation records (type 'train' or 'eval') to plot.")

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax = axes[0]
    ax.plot(*loss, label="loss")
    ax.plot(*total, label="total_loss")
    if val_loss[0]:
        ax.plot(*val_loss, "o-", label="validation loss")
    ax.set_ylabel("loss")
    ax.legend()
    axes[1].plot(*lr, color="tab:green")
    axes[1].set_ylabel("learning rate")
    axes[1].ticklabel_format(axis="y", useOffset=False)
    ax = axes[2]
    if top1[0]:
        ax.plot(*top1, "o-", label="top-1")
        ax.plot(*top5, "o-", label="top-5")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no evaluation records", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xlabel("step")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        with publish_file(output, "wb") as f:  # never a half-written PNG
            fig.savefig(f, dpi=100, format="png")
    finally:
        plt.close(fig)
    return output


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Training and evaluation curves of a run, as a PNG.")
    parser.add_argument("--run", required=True, help="A run's log directory, or its metrics.jsonl.")
    parser.add_argument("--output", default=None, help="PNG to write (default: curves.png in the run directory).")
    parser.add_argument("--title", default=None, help="Figure title (default: the run directory).")
    f = parser.parse_args(argv)
    run_dir = f.run if os.path.isdir(f.run) else os.path.dirname(os.path.abspath(f.run))
    output = f.output or os.path.join(run_dir, "curves.png")
    try:
        path = plot(read_metrics(f.run), output, title=f.title or run_dir)
    except (FileNotFoundError, PlotError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
