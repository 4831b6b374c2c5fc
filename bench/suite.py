"""``make bench``: the whole speed picture of this machine in one run, one table.

    .venv/bin/python bench/suite.py                     # everything below (about half an hour on 2 cores)
    .venv/bin/python bench/suite.py --parts=train       # only the training steps
    .venv/bin/python bench/suite.py --models=resnet50 --precisions=bf16

Parts, in this order, each with the machine's own limit or a peer measured in the same run:

* ``train``: the training step of each model (AlexNet, ResNet-50, MobileNetV3-Large, EfficientNet-B0,
  ConvNeXt-T, ViT-B/16) in fp32 and mixed bf16: ours (``main.py`` as users run it), PyTorch in both memory
  formats (the best is the peer) and the GEMM-bound limit (``bench/train_step.py``); the precision
  ``--precision=auto`` picks for the model on this machine and that precision's speed against fp32; peak
  resident memory of ours and PyTorch's step.
* ``eval``: evaluation throughput from a folder of JPEGs (decode, the exact evaluation transforms, forward):
  ours against torchvision's ``DataLoader`` + model (``bench/eval_throughput.py``).
* ``scaling``: 2 worker processes (one core each) against 1, AlexNet, per-rank batches 128 and 256
  (``bench/scaling.py``).

The load average is printed before and after each part: figures taken under load are not comparable
(bench/RESULTS.md says what the load was). A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import train_step  # noqa: E402

# Model -> per-step batch (the measurements: 64, and 32 for the two largest activations).
MODELS = {"alexnet": 64, "resnet50": 64, "mobilenet_v3_large": 64, "efficientnet_b0": 64, "convnext_tiny": 32,
          "vit_b_16": 32}
PARTS = ("train", "eval", "scaling")


def auto_choice(model: str) -> str:
    """What ``--precision=auto`` picks for ``model`` on this machine's CPU (backends/precision.py)."""
    import zoo
    from backends.precision import cpu_flags, cpu_precision, for_model

    choice, _ = for_model(*cpu_precision(cpu_flags()), device="cpu", model=model,
                          fp32_faster_on=zoo.get_recipe(model).fp32_faster_on)
    return choice


def train_part(args: argparse.Namespace, machine: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per model: each precision's ours / PyTorch best / limit, and auto's choice."""
    rows = []
    for model in args.models.split(","):
        batch = MODELS.get(model, 64)
        row: Dict[str, Any] = {"model": model, "batch": batch, "auto": auto_choice(model)}
        for precision in args.precisions.split(","):
            point = train_step.parse_args([f"--model={model}", f"--precision={precision}", f"--batch={batch}",
                                           f"--steps={args.steps}", f"--warmup_steps={args.warmup_steps}",
                                           f"--steps_per_call={args.steps_per_call}", "--rounds=1"])
            lines = train_step.measure(point, ["ours", "pytorch", "pytorch_cl", "limit"], machine)
            for line in lines.values():
                print(json.dumps(line), flush=True)
            best = max(("pytorch", "pytorch_cl"), key=lambda i: lines[i]["images_per_second"])
            row[precision] = dict(ours=lines["ours"]["images_per_second"],
                                  torch=lines[best]["images_per_second"], torch_format=lines[best]["memory_format"],
                                  limit=lines["limit"]["images_per_second"],
                                  gemm_gflops=lines["limit"]["gemm_gflops"],
                                  ours_rss=lines["ours"].get("peak_rss_mb"), torch_rss=lines[best].get("peak_rss_mb"))
        rows.append(row)
    return rows


def _subprocess_lines(cmd: Sequence[str]) -> List[Dict[str, Any]]:
    proc = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(json.dumps(line), flush=True)
    return lines


def eval_part(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Evaluation from JPEGs, ours against torchvision's loader + model, ResNet-50 in fp32 and bf16."""
    lines = _subprocess_lines([sys.executable, os.path.join(HERE, "eval_throughput.py"), "--model=resnet50",
                               "--batch=64", "--precisions=fp32,bf16", f"--images={args.eval_images}", "--rounds=1"])
    out = []
    for precision in ("fp32", "bf16"):
        found = {line["implementation"]: line for line in lines if line["precision"] == precision}
        if {"ours", "torchvision"} <= set(found):
            out.append(dict(precision=precision, ours=found["ours"]["images_per_second"],
                            torch=found["torchvision"]["images_per_second"],
                            ours_forward=found["ours"].get("forward_only_images_per_second"),
                            torch_forward=found["torchvision"].get("forward_only_images_per_second"),
                            torch_setup=f"{found['torchvision'].get('memory_format')}, "
                                        f"{found['torchvision'].get('workers')} loader workers"))
    return out


def scaling_part(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """2-worker efficiency of AlexNet at per-rank batches 128 and 256."""
    out = []
    for batch in (128, 256):
        lines = _subprocess_lines([sys.executable, os.path.join(HERE, "scaling.py"), f"--batch_size={batch}",
                                   "--steps=8", "--log_every=2", "--repeats=1"])
        summary = next(line for line in lines if line.get("bench") == "scaling_summary")
        out.append(dict(batch=batch, one=summary["one_worker_images_per_second"],
                        two=summary["two_workers_images_per_second"], efficiency=summary["efficiency"]))
    return out


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def report(machine: Dict[str, Any], train: List[Dict[str, Any]], evaluation: List[Dict[str, Any]],
           scaling: List[Dict[str, Any]], loads: Dict[str, Any]) -> str:
    """The Markdown tables of bench/RESULTS.md."""
    out = [f"Machine: {machine['cpu']}, {machine['nproc']} cores; {machine['date']}; TensorFlow "
           f"{machine.get('tensorflow')}, PyTorch {machine.get('torch')}; load average (1, 5, 15 min) "
           + "; ".join(f"{k}: {v}" for k, v in loads.items()) + "."]
    if train:
        out += ["", "| model (batch) | precision | ours img/s | best PyTorch img/s (format) | ours / PyTorch | "
                "limit img/s (GEMM GFLOP/s) | ours / limit | peak RSS MiB ours / PyTorch |",
                "|---|---|---|---|---|---|---|---|"]
        for row in train:
            for precision in ("fp32", "bf16"):
                if precision not in row:
                    continue
                r = row[precision]
                out.append(f"| {row['model']} ({row['batch']}) | {precision} | {r['ours']:.1f} | {r['torch']:.1f} "
                           f"({r['torch_format']}) | {_ratio(r['ours'], r['torch'])}x | {r['limit']:.1f} "
                           f"({r['gemm_gflops']:.0f}) | {_ratio(r['ours'], r['limit'])} | "
                           f"{r['ours_rss'] or '-'} / {r['torch_rss'] or '-'} |")
        out += ["", "| model | `--precision=auto` picks | its img/s | fp32 img/s | auto / fp32 |",
                "|---|---|---|---|---|"]
        for row in train:
            if row["auto"] in row and "fp32" in row:
                out.append(f"| {row['model']} | {row['auto']} | {row[row['auto']]['ours']:.1f} | "
                           f"{row['fp32']['ours']:.1f} | {_ratio(row[row['auto']]['ours'], row['fp32']['ours'])} |")
    if evaluation:
        out += ["", "| evaluation from JPEGs, resnet50, batch 64 | ours img/s | torchvision loader + model img/s "
                "(best setup) | ours / torchvision | forward pass alone img/s, ours / PyTorch |",
                "|---|---|---|---|---|"]
        for e in evaluation:
            out.append(f"| {e['precision']} | {e['ours']:.1f} | {e['torch']:.1f} ({e['torch_setup']}) | "
                       f"{_ratio(e['ours'], e['torch'])}x | {e['ours_forward']} / {e['torch_forward']} |")
    if scaling:
        out += ["", "| AlexNet fp32, per-rank batch | 1 worker (1 core) img/s | 2 workers (1 core each) img/s | "
                "efficiency |", "|---|---|---|---|"]
        for s in scaling:
            out.append(f"| {s['batch']} | {s['one']:.1f} | {s['two']:.1f} | {s['efficiency']:.2f} |")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"Comma-separated, of {', '.join(PARTS)}.")
    p.add_argument("--models", default=",".join(MODELS), help="Comma-separated zoo models for the train part.")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--steps", type=int, default=4, help="Timed training steps per implementation.")
    p.add_argument("--warmup_steps", type=int, default=2)
    p.add_argument("--steps_per_call", type=int, default=2)
    p.add_argument("--eval_images", type=int, default=128)
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"--parts: unknown {unknown}; choose from {list(PARTS)}")
    import datetime

    machine = dict(nproc=os.cpu_count(), cpu=train_step.cpu_model(), date=datetime.date.today().isoformat(),
                   **train_step.versions())
    loads = {"start": train_step.load_average()}
    print(f"load average at start: {loads['start']} (figures are comparable only on a quiet machine)", flush=True)
    train = train_part(args, machine) if "train" in parts else []
    loads["after train"] = train_step.load_average()
    evaluation = eval_part(args) if "eval" in parts else []
    scaling = scaling_part(args) if "scaling" in parts else []
    loads["end"] = train_step.load_average()
    print()
    print(report(machine, train, evaluation, scaling, loads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
