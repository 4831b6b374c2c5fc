"""A stand-in for a training rank, driven by the launcher tests.

Usage: python launcher_worker.py ACTION [ARG]   (the rank comes from $RANK)

Actions:
  ok           print a few lines, then exit 0
  fail CODE    print lines, then exit with CODE
  sleep        print "ready", then sleep until signalled
  stubborn     ignore SIGTERM, print "ready", sleep (needs SIGKILL)
  spawn FILE   start a sleeping grandchild, write its pid to FILE, print "ready", sleep
  affinity     print the CPU cores this process may run on, exit 0
Every process also writes its own pid to $PID_DIR/rank<RANK>.pid if PID_DIR is set, and the
sleeping actions create $READY_FILE (if set) once they are set up.
"""

import os
import signal
import subprocess
import sys
import time

rank = os.environ.get("RANK", "?")
action = sys.argv[1]
if os.environ.get("PID_DIR"):
    with open(os.path.join(os.environ["PID_DIR"], f"rank{rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
print(f"worker {rank} starting action {action}", flush=True)
if action == "ok":
    for i in range(3):
        print(f"worker {rank} line {i} env={os.environ.get('EXTRA', '')}", flush=True)
    sys.exit(0)
if action == "fail":
    for i in range(30):
        print(f"worker {rank} progress {i}", flush=True)
    print(f"worker {rank} giving up", file=sys.stderr, flush=True)
    sys.exit(int(sys.argv[2]))
if action == "affinity":
    print(f"worker {rank} cpus={','.join(map(str, sorted(os.sched_getaffinity(0))))}", flush=True)
    sys.exit(0)
if action == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if action == "spawn":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[2], "w") as f:
        f.write(str(child.pid))
print(f"worker {rank} ready", flush=True)
if os.environ.get("READY_FILE"):  # tells a test's other rank that this one is set up
    with open(os.environ["READY_FILE"], "w") as f:
        f.write("ready")
time.sleep(600)
