"""A stand-in for a training rank, driven by the launcher tests.

Usage: python launcher_worker.py ACTION [ARG]   (the rank comes from $RANK)

Actions:
  ok           print a few lines, then exit 0
  fail CODE    print lines, then exit with CODE
  sleep        print "ready", then sleep until signalled
  stubborn     ignore SIGTERM, print "ready", sleep (needs SIGKILL)
  spawn FILE   start a sleeping grandchild, write its pid to FILE, print "ready", sleep
  affinity     print the CPU cores this process may run on, exit 0
  preemptible SAVE_S
               handle SIGTERM/SIGINT as training does (runs/preemption.py): print "ready", wait for a
               stop request or for $STOP_FILE (the other ranks' agreement, which training gets from its
               collectives), then "save" for SAVE_S seconds, create $PID_DIR/saved<RANK> and exit 75;
               a second signal exits 79 at once. A request creates $STOP_FILE for the others.
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
if action == "preemptible":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from runs import preemption

    stop_file = os.environ["STOP_FILE"]
    with preemption.handling():
        print(f"worker {rank} ready", flush=True)
        while not preemption.requested() and not os.path.exists(stop_file):
            time.sleep(0.01)
        if preemption.requested():
            open(stop_file, "a").close()
        print(f"worker {rank} saving", flush=True)
        time.sleep(float(sys.argv[2]))
        open(os.path.join(os.environ["PID_DIR"], f"saved{rank}"), "w").close()
        print(f"training stopped by SIGTERM after step 7: worker {rank} saved", flush=True)
    sys.exit(preemption.PREEMPTED_EXIT_CODE)
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
