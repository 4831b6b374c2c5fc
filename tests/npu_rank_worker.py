"""Stands in for a training rank under the NPU launcher: records what it was started with.

Writes ``$WORKER_OUT_DIR/rank<RANK_ID>.json`` with its launch environment, arguments, working
directory and CPU cores, prints a line, and exits 0. With ``--fail_rank=R`` rank R exits with
code 3 after a last line and the other ranks wait (as ranks blocked in a collective would), so that
the launcher has to stop them.
"""

import json
import os
import sys
import time

VARS = ("RANK_SIZE", "RANK_ID", "ASCEND_DEVICE_ID", "DEVICE_ID", "JOB_ID", "RANK_TABLE_FILE",
        "CM_CHIEF_IP", "TF_CONFIG")

rank = os.environ.get("RANK_ID", "none")
record = {
    "env": {k: os.environ.get(k) for k in VARS},
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "cpus": sorted(os.sched_getaffinity(0)),
}
with open(os.path.join(os.environ["WORKER_OUT_DIR"], f"rank{rank}.json"), "w", encoding="utf-8") as f:
    json.dump(record, f)
print(f"worker for rank {rank} on NPU {os.environ.get('ASCEND_DEVICE_ID')} done", flush=True)
fail = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--fail_rank=")]
if fail and fail[0] == rank:
    print(f"worker for rank {rank}: HCCL init failed (simulated)", file=sys.stderr, flush=True)
    sys.exit(3)
if fail:
    time.sleep(120)
