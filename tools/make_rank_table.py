"""Writes, checks or converts an Ascend HCCL rank table.

Generate a version 1.0 table for this server (NPU addresses from the driver's /etc/hccn.conf)::

    python tools/make_rank_table.py --rank_size=8 --output=rank_table_8p.json
    python tools/make_rank_table.py --rank_size=4 --device_ids=4,5,6,7 --server_id=10.0.0.1 \\
        --output=rank_table_4p.json

Check a table in either layout (the Ascend recipe's ``8p.json`` or version 1.0), optionally against a rank
size, and convert it to version 1.0::

    python tools/make_rank_table.py --input=scripts/8p.json --rank_size=8
    python tools/make_rank_table.py --input=scripts/8p.json --output=rank_table_8p.json

Merge the tables of several servers (each generated there with its own ``--server_id``) into the
cluster's table, ranks numbered server by server::

    python tools/make_rank_table.py --merge server1.json server2.json --output=cluster.json

``main.py --backend=npu --rank_size=N`` without ``--rank_table_file`` generates the same table itself.
The addresses are the NPUs' own; this tool only reads and writes them, it never connects to them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import List, Optional, Sequence


def _load_rank_table_module():
    """``backends/rank_table.py`` alone: importing the ``backends`` package would load TensorFlow
    and every backend's flags, ten seconds for a JSON file."""
    name = "backends.rank_table"
    if name not in sys.modules:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if root not in sys.path:  # rank_table imports the top-level atomic.py (light)
            sys.path.insert(0, root)
        path = os.path.join(root, "backends", "rank_table.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


rt = _load_rank_table_module()

__all__ = ["describe", "main", "parse_args"]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (argparse: main.py's absl flags share some of these names)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", help="An existing rank table (either layout) to check, or to convert with --output.")
    p.add_argument("--output", help="Where to write the version 1.0 table.")
    p.add_argument("--merge", nargs="+", metavar="FILE", help="Rank tables of single servers to merge, in rank "
                   "order, into one cluster table (with --output).")
    p.add_argument("--rank_size", type=int, help="Number of NPUs (ranks). Generating: default 8. Checking: the "
                   "table must list this many.")
    p.add_argument("--device_ids", help="Generating: the NPUs to use, comma-separated, in rank order (default "
                   "0..rank_size-1).")
    p.add_argument("--device_ips", help="Generating: their interconnect addresses, comma-separated, in the same "
                   "order (default: read from --hccn_conf).")
    p.add_argument("--hccn_conf", default="/etc/hccn.conf", help="Generating: the driver's file of NPU addresses.")
    p.add_argument("--server_id", default="127.0.0.1", help="Generating: this server's id in the table (its host "
                   "address when several servers train together).")
    args = p.parse_args(argv)
    if args.rank_size is not None and args.rank_size < 1:
        p.error(f"--rank_size={args.rank_size}: must be at least 1.")
    if not args.input and not args.output:
        p.error("pass --output=FILE to write a new table, or --input=FILE to check one.")
    if args.merge and (args.input or not args.output):
        p.error("--merge needs --output=FILE and no --input.")
    return args


def describe(table: rt.RankTable) -> str:
    """A short human-readable listing: one line per rank."""
    lines = [f"{table.rank_size} rank(s) on {len(table.servers)} server(s) (read as layout {table.source_format}):"]
    for d in table.devices:
        lines.append(f"  rank {d.rank_id:3d}  server {d.server_id}  device {d.device_id}  ip {d.device_ip}")
    return "\n".join(lines)


def _generate(rank_size: int, device_ids: Optional[Sequence[str]], device_ips: Optional[Sequence[str]],
              hccn_conf: str, server_id: str) -> rt.RankTable:
    try:
        ids: List[int] = [int(d) for d in device_ids] if device_ids else list(range(rank_size))
    except ValueError:
        raise rt.RankTableError(f"--device_ids={','.join(device_ids)}: expected numbers, e.g. 0,1,2,3.") from None
    if len(ids) != rank_size:
        raise rt.RankTableError(f"--device_ids lists {len(ids)} NPU(s) but --rank_size={rank_size}.")
    if device_ips:
        if len(device_ips) != len(ids):
            raise rt.RankTableError(f"--device_ips lists {len(device_ips)} address(es) for {len(ids)} NPU(s).")
        addresses = dict(zip(ids, device_ips))
    else:
        addresses = rt.read_hccn_conf(hccn_conf)
    return rt.make_local_rank_table(ids, addresses, server_id=server_id)


def _split(text: Optional[str]) -> Optional[List[str]]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the tool; returns the exit code (1 with a message on stderr for a bad table or input)."""
    args = parse_args(argv)
    try:
        if args.merge:
            table = rt.merge_rank_tables([rt.load_rank_table(path) for path in args.merge])
            if args.rank_size is not None:
                table.check_rank_size(args.rank_size)
        elif args.input:
            table = rt.load_rank_table(args.input)
            if args.rank_size is not None:
                table.check_rank_size(args.rank_size)
        else:
            table = _generate(args.rank_size or 8, _split(args.device_ids), _split(args.device_ips), args.hccn_conf,
                              args.server_id)
        print(describe(table))
        if args.output:
            print(f"wrote {rt.write_rank_table(table, args.output)} (version 1.0)")
    except rt.RankTableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
