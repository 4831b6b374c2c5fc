"""Training-step throughput of any zoo model: ours (the real training path) next to PyTorch's CPU build.

Prints one JSON line per implementation (images per second of one training step, batch, precision,
threads, steps timed, warm-up steps excluded, machine), measured in one run:

    .venv/bin/python bench/train_step.py                                   # alexnet, fp32, batch 64, 224x224
    .venv/bin/python bench/train_step.py --precision=bf16                  # mixed bfloat16 on both sides
    .venv/bin/python bench/train_step.py --model=resnet50 --precision=bf16

Ours is measured exactly as users run it: ``main.py --model=NAME --backend=cpu --synthetic``
(``modes.runner`` -> ``training.trainer.Trainer``: several steps per ``tf.function`` call, the
shared loss with label smoothing and weight decay, Nesterov momentum SGD). Its figure is the
trainer's own FPS (``metrics.jsonl``), averaged over the timed log intervals; the first
``--warmup_steps`` (tracing, first-touch allocation) are excluded. The peer is torchvision's same
network with the same loss and optimiser in PyTorch (eager, the CPU build), timed over the same steps
after the same warm-up.

Implementations run in separate processes, one after another, alternating for ``--rounds`` rounds
so that load from other users of the machine affects both; each line reports the median round and
every round's figure. This is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLEMENTATIONS = ("ours", "ours_xla", "ours_uint8", "pytorch", "pytorch_cl", "limit")
# Ours with one setting changed: main.py flags added to its command line.
OURS_VARIANTS = {"ours": [], "ours_xla": ["--xla"], "ours_uint8": ["--normalize_on=device"]}
DEFAULT_IMPLEMENTATIONS = ("ours", "pytorch", "pytorch_cl", "limit")
PRECISIONS = ("fp32", "bf16")

# The recipe's optimiser settings, shared by both sides.
MOMENTUM = 0.9
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 1e-4
# Small enough that no model diverges on random images in either precision (a diverged step is skipped, not
# timed as a full one): the rate does not change the work of a step.
LR = 0.001


# -- machine ------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), or the platform's processor string."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children, e.g. main.py), in MiB."""
    import resource

    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024.0, 1)


def load_average() -> List[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def versions() -> Dict[str, str]:
    """Versions of Python, TensorFlow, Keras and PyTorch in this environment (installed ones only)."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist, key in (("tensorflow", "tensorflow"), ("keras", "keras"), ("torch", "torch")):
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- ours: main.py as users run it --------------------------------------------------------------------


def run_ours(args: argparse.Namespace) -> Dict[str, Any]:
    """Trains with ``main.py`` on synthetic data and returns the timed intervals' throughput.

    One log line (and one ``tf.function`` call) every ``--steps_per_call`` steps; the lines that
    end within the warm-up are dropped, the rest give images / seconds as the trainer measured them.
    """
    per_call = args.steps_per_call
    warmup = -(-args.warmup_steps // per_call) * per_call
    steps = -(-args.steps // per_call) * per_call
    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as log_dir:
        cmd = [
            sys.executable, os.path.join(ROOT, "main.py"), f"--model={args.model}", "--backend=cpu", "--synthetic",
            f"--batch_size={args.batch}", f"--image_size={args.image_size}", f"--precision={args.precision}",
            f"--max_train_steps={warmup + steps}", f"--iterations_per_loop={per_call}",
            f"--save_summary_steps={per_call}", "--nodo_checkpoint", f"--log_dir={log_dir}", "--seed=0",
            f"--intra_op_threads={args.threads}", f"--lr={LR}", f"--momentum={MOMENTUM}", "--use_nesterov",
            f"--label_smoothing={LABEL_SMOOTHING}", f"--weight_decay={WEIGHT_DECAY}", "--optimizer=momentum",
            "--num_classes=1000", "--nan_policy=skip_step", "--max_consecutive_skips=1000000",
            *OURS_VARIANTS[args.worker or "ours"],
        ]
        began = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        wall = time.perf_counter() - began
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        with open(os.path.join(log_dir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    timed = [r for r in records if r.get("type") == "train" and r["step"] > warmup]
    seconds = sum(r["interval_seconds"] for r in timed)
    images = args.batch * (timed[-1]["step"] - warmup)
    return dict(images_per_second=images / seconds, steps_timed=steps, warmup_steps=warmup,
                seconds=seconds, process_seconds=wall, final_loss=timed[-1]["loss"],
                threads=args.threads or os.cpu_count(), peak_rss_mb=peak_rss_mb(children=True))


# -- the peer: PyTorch ----------------------------------------------------------------------------------


def run_pytorch(args: argparse.Namespace) -> Dict[str, Any]:
    """torchvision's network with the same loss and optimiser in PyTorch eager mode, timed after a warm-up."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    sys.path.insert(0, ROOT)
    import zoo
    from tools.torchvision_models import import_models

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    source = zoo.get_torchvision_source(args.model)
    if source is None:
        raise SystemExit(f"--model={args.model} has no torchvision reference to compare with.")
    kwargs = dict(source.kwargs)
    if source.size_kwarg:
        kwargs[source.size_kwarg] = args.image_size
    model = import_models().get_model(source.builder, weights=None, num_classes=1000, **kwargs)
    memory_format = torch.channels_last if args.torch_channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    params = list(model.parameters())
    aux_weights = zoo.get_recipe(args.model).aux_loss_weights
    # Weight decay as the gradient term, as the trainer applies it (every parameter, as the recipe does).
    optimizer = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    images = torch.randn(args.batch, 3, args.image_size, args.image_size).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, (args.batch,))

    def step() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            outputs = model(images)
        heads = list(outputs) if isinstance(outputs, tuple) else [outputs]
        loss = F.cross_entropy(heads[0].float(), labels, label_smoothing=LABEL_SMOOTHING)
        for weight, aux in zip(aux_weights, heads[1:]):
            loss = loss + weight * F.cross_entropy(aux.float(), labels, label_smoothing=LABEL_SMOOTHING)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup_steps):
        step()
    began = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    final_loss = float(loss)
    seconds = time.perf_counter() - began
    return dict(images_per_second=args.batch * args.steps / seconds, steps_timed=args.steps,
                warmup_steps=args.warmup_steps, seconds=seconds, final_loss=final_loss,
                threads=torch.get_num_threads(), peak_rss_mb=peak_rss_mb(),
                memory_format="channels_last" if args.torch_channels_last else "nchw")


# -- the machine's limit -------------------------------------------------------------------------------


def run_limit(args: argparse.Namespace) -> Dict[str, Any]:
    """The GEMM-bound limit: measured matmul throughput / training FLOPs per image.

    Throughput: ``tf.matmul`` of two 2048x2048 matrices in the benchmark's precision (bfloat16 for
    bf16), best of several timed repetitions. FLOPs: the model's forward pass at ``--image_size``,
    counted by TensorFlow's profiler on the frozen graph, times 3 (forward, gradient with respect to
    the activations, and with respect to the weights).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    sys.path.insert(0, ROOT)
    import zoo

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    dtype = tf.bfloat16 if args.precision == "bf16" else tf.float32
    n = 2048
    a = tf.random.normal((n, n), dtype=tf.float32)
    b = tf.random.normal((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[0, :1], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(5):
            matmul(a, b).numpy()
        best = min(best, (time.perf_counter() - began) / 5)
    gflops = 2 * n ** 3 / best / 1e9

    model = zoo.create_model(args.model, num_classes=1000, image_size=args.image_size)
    spec = tf.TensorSpec([1, args.image_size, args.image_size, 3], tf.float32)
    forward_fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(forward_fn)
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    forward = model_analyzer.profile(frozen.graph, options=options).total_float_ops / 1e9
    per_image = 3 * forward
    return dict(images_per_second=gflops / per_image, gemm_gflops=gflops, forward_gflop_per_image=forward,
                train_gflop_per_image=per_image, seconds=0.0, steps_timed=0, warmup_steps=0, final_loss=0.0,
                threads=args.threads or os.cpu_count())


# -- orchestration ------------------------------------------------------------------------------------


def _worker_argv(args: argparse.Namespace, impl: str) -> List[str]:
    return [
        sys.executable, os.path.abspath(__file__), f"--worker={impl}", f"--model={args.model}",
        f"--precision={args.precision}",
        f"--batch={args.batch}", f"--image_size={args.image_size}", f"--steps={args.steps}",
        f"--warmup_steps={args.warmup_steps}", f"--steps_per_call={args.steps_per_call}",
        f"--threads={args.threads}",
        "--torch_channels_last" if args.torch_channels_last or impl == "pytorch_cl" else "--no-torch_channels_last",
    ]


def run_round(args: argparse.Namespace, impl: str) -> Dict[str, Any]:
    """One measurement of ``impl`` in a fresh process; returns its result dictionary."""
    load_before = load_average()
    proc = subprocess.run(_worker_argv(args, impl), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_avg_before"] = load_before
    return result


def summarise(impl: str, rounds: Sequence[Dict[str, Any]], args: argparse.Namespace,
              machine: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON line of one implementation: the median round plus every round's figure."""
    rates = [r["images_per_second"] for r in rounds]
    first = rounds[0]
    line = {
        "name": {"ours": "ours (main.py -> Trainer, cpu backend)", "ours_xla": "ours with --xla",
                 "ours_uint8": "ours with --normalize_on=device (uint8 batches)",
                 "pytorch": f"pytorch {machine.get('torch')} eager", "pytorch_cl": "pytorch, channels_last",
                 "limit": "GEMM-bound limit (measured matmul GFLOP/s / training GFLOP per image)"}[impl],
        "implementation": impl,
        "model": args.model,
        "images_per_second": round(statistics.median(rates), 2),
        "unit": "img/s",
        "per_round": [round(x, 2) for x in rates],
        "batch": args.batch,
        "image_size": args.image_size,
        "precision": args.precision if args.precision == "fp32" else "bf16 (mixed: fp32 weights, bf16 compute)",
        "threads": first["threads"],
        "steps_timed": first["steps_timed"],
        "warmup_steps_excluded": first["warmup_steps"],
        "rounds": len(rounds),
        "load_avg_before_rounds": [r["load_avg_before"] for r in rounds],
        "final_loss": round(rounds[-1]["final_loss"], 4),
        "machine": machine,
    }
    if "peak_rss_mb" in first:
        line["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rounds)
    if impl.startswith("ours"):
        line["steps_per_call"] = args.steps_per_call
    elif impl.startswith("pytorch"):
        line["memory_format"] = first["memory_format"]
    else:
        for key in ("gemm_gflops", "forward_gflop_per_image", "train_gflop_per_image"):
            line[key] = round(statistics.median(r[key] for r in rounds), 2)
        for key in ("steps_timed", "warmup_steps_excluded", "final_loss"):
            line.pop(key)
    return line


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="alexnet", help="Zoo model (python main.py --list); the peer is "
                   "torchvision's network of the same name.")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32, or bf16 (mixed) on both sides.")
    p.add_argument("--batch", type=int, default=64, help="Images per training step.")
    p.add_argument("--precisions", default=None, help="Comma-separated: measure each (overrides --precision).")
    p.add_argument("--batches", default=None, help="Comma-separated: measure each (overrides --batch).")
    p.add_argument("--image_size", type=int, default=224, help="Square input size.")
    p.add_argument("--steps", type=int, default=30, help="Timed steps per round (ours: rounded up to "
                   "whole calls).")
    p.add_argument("--warmup_steps", type=int, default=10, help="Steps run first and excluded (ours: rounded "
                   "up to whole calls).")
    p.add_argument("--steps_per_call", type=int, default=10, help="Ours: steps per tf.function call "
                   "(--iterations_per_loop and --save_summary_steps).")
    p.add_argument("--rounds", type=int, default=2, help="Alternating rounds; the median is reported.")
    p.add_argument("--threads", type=int, default=0, help="Intra-op threads on both sides (0: the default, "
                   "all cores).")
    p.add_argument("--impl", default=",".join(DEFAULT_IMPLEMENTATIONS), help="Comma-separated: ours, ours_xla "
                   "(--xla), ours_uint8 (--normalize_on=device), pytorch, pytorch_cl (channels_last), limit (the "
                   "machine's GEMM-bound limit for the model, measured in the same run).")
    p.add_argument("--torch_channels_last", action=argparse.BooleanOptionalAction, default=False,
                   help="PyTorch: NHWC memory format for images and weights.")
    p.add_argument("--worker", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.batch, args.image_size, args.steps, args.steps_per_call, args.rounds) < 1 or args.warmup_steps < 0:
        p.error("sizes, steps and rounds must be positive (warm-up may be 0)")
    return args


def measure(args: argparse.Namespace, impls: Sequence[str], machine: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Every implementation at ``args.batch`` and ``args.precision``, alternating for ``args.rounds`` rounds."""
    results: Dict[str, List[Dict[str, Any]]] = {impl: [] for impl in impls}
    for _ in range(args.rounds):
        for impl in impls:
            results[impl].append(run_round(args, impl))
    lines = {impl: summarise(impl, rounds, args, machine) for impl, rounds in results.items()}
    torch_best = max((lines[i]["images_per_second"] for i in ("pytorch", "pytorch_cl") if i in lines), default=None)
    for impl, line in lines.items():
        if impl.startswith("ours") and torch_best:
            line["speedup_vs_best_pytorch"] = round(line["images_per_second"] / torch_best, 3)
        if "limit" in lines and impl != "limit":
            line["fraction_of_limit"] = round(line["images_per_second"] / lines["limit"]["images_per_second"], 3)
    return lines


def table(rows: Sequence[Dict[str, Dict[str, Any]]], impls: Sequence[str]) -> str:
    """A Markdown table: one row per (batch, precision), img/s of each implementation, ours' ratios."""
    names = [i for i in impls if i != "limit"]
    head = ["batch", "precision"] + [f"{i} img/s" for i in names] + (
        ["limit img/s", "ours / limit"] if "limit" in impls else []) + (
        ["ours / best pytorch"] if "ours" in impls and any(i.startswith("pytorch") for i in impls) else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lines in rows:
        first = next(iter(lines.values()))
        cells = [str(first["batch"]), first["precision"].split(" ")[0]]
        cells += [f"{lines[i]['images_per_second']:.1f}" for i in names]
        if "limit" in impls:
            cells += [f"{lines['limit']['images_per_second']:.1f} ({lines['limit']['gemm_gflops']:.0f} GFLOP/s)",
                      f"{lines['ours']['fraction_of_limit']:.2f}" if "ours" in lines else ""]
        if "speedup_vs_best_pytorch" in lines.get("ours", {}):
            cells.append(f"{lines['ours']['speedup_vs_best_pytorch']:.2f}x")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run = run_limit if args.worker == "limit" else run_pytorch if args.worker.startswith("pytorch") else run_ours
        result = run(args)
        print(json.dumps(result))
        return 0
    impls = [name.strip() for name in args.impl.split(",") if name.strip()]
    unknown = sorted(set(impls) - set(IMPLEMENTATIONS))
    if unknown:
        raise SystemExit(f"--impl: unknown {unknown}; choose from {list(IMPLEMENTATIONS)}")
    machine = dict(nproc=os.cpu_count(), cpu=cpu_model(), date=datetime.date.today().isoformat(), **versions())
    machine["load_avg_start"] = load_average()
    rows = []
    for precision in (args.precisions or args.precision).split(","):
        for batch in (args.batches or str(args.batch)).split(","):
            point = argparse.Namespace(**{**vars(args), "precision": precision.strip(), "batch": int(batch)})
            lines = measure(point, impls, machine)
            for line in lines.values():
                print(json.dumps(line), flush=True)
            rows.append(lines)
    print(f"\n{args.model}, {args.image_size}x{args.image_size}, {machine['cpu']}, {machine['nproc']} cores, "
          f"load average at start {machine['load_avg_start']}, after {load_average()}:")
    print(table(rows, impls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
