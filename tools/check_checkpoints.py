"""Lists the checkpoints of a run, each readable or not, and why.

    python tools/check_checkpoints.py results/1p/0          # a run's checkpoint directory
    python tools/check_checkpoints.py results/2p            # a multi-process job's --log_dir (its 0/ is read)
    python tools/check_checkpoints.py --quick results/1p/0  # index and file sizes only, no tensor read

Each checkpoint ``model.ckpt-N`` gets one line, ``<prefix><TAB>readable`` or
``<prefix><TAB>unreadable<TAB><why>`` (an empty, truncated or damaged index, a data file shorter than
its index says, a tensor whose checksum does not match, a settings file that is not JSON), in step
order; leftovers of interrupted saves (data without an index, ``_temp`` folders, which the next
training start removes) get ``<path><TAB>incomplete``. A summary on stderr names the checkpoint that
training, evaluation, predict and export would use (the newest readable one).

Exit code 0: every checkpoint reads (or there is none); 1: at least one is unreadable; 2: bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # reading files needs no GPU

__all__ = ["check", "main"]


def _checkpoint_dir(run_dir: str) -> str:
    """``run_dir``, or its rank-0 directory when only that holds checkpoints (a multi-process job's --log_dir)."""
    from runs.checkpoints import list_checkpoints

    rank0 = os.path.join(run_dir, "0")
    if not list_checkpoints(run_dir) and list_checkpoints(rank0):
        return rank0
    return run_dir


def check(run_dir: str, *, full: bool = True) -> Tuple[str, List[Tuple[str, Optional[str]]], List[str]]:
    """``(checkpoint directory, [(prefix, why unreadable or None)] in step order, leftovers of interrupted saves)``.

    Args:
        run_dir: a checkpoint directory, or a multi-process job's log directory.
        full: read every tensor too (checksums); False checks the index and the files' sizes only.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
    """
    from runs.checkpoints import CHECKPOINT_NAME, checkpoint_problem, list_checkpoints

    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a directory; pass a run's checkpoint directory (--checkpoint_dir, "
                                "else its --log_dir).")
    directory = _checkpoint_dir(run_dir)
    found = list_checkpoints(directory)
    results = [(prefix, checkpoint_problem(prefix, full=full)) for prefix in found]
    complete = {os.path.basename(p) for p in found}
    leftovers = []
    for name in sorted(os.listdir(directory)):
        if not name.startswith(CHECKPOINT_NAME + "-"):
            continue
        base = name.split(".data-", 1)[0] if ".data-" in name else name
        if name.endswith("_temp") or (".data-" in name and base not in complete):
            leftovers.append(os.path.join(directory, name))
    return directory, results, leftovers


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="A run's checkpoint directory (--checkpoint_dir, else --log_dir).")
    parser.add_argument("--quick", action="store_true", help="Check the index and the data files' sizes only "
                        "(no tensor is read, so a flipped byte in the data goes unnoticed).")
    args = parser.parse_args(argv)
    try:
        directory, results, leftovers = check(args.run_dir, full=not args.quick)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for prefix, why in results:
        print(f"{prefix}\treadable" if why is None else f"{prefix}\tunreadable\t{why}", flush=True)
    for path in leftovers:
        print(f"{path}\tincomplete\tleft by an interrupted save; training removes it when it starts")
    if not results:
        print(f"no checkpoint model.ckpt-N in {directory}.", file=sys.stderr)
        return 0
    bad = [p for p, why in results if why is not None]
    good = [p for p, why in results if why is None]
    used = (f"training resumes from {good[-1]}, the newest readable one" if good
            else "none can be restored: move them away to start afresh")
    if bad:
        print(f"{len(bad)} of {len(results)} checkpoint(s) in {directory} cannot be read; {used}. Delete the "
              "unreadable ones when convenient.", file=sys.stderr)
        return 1
    print(f"all {len(results)} checkpoint(s) in {directory} are readable; {used}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
