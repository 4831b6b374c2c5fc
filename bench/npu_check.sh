#!/usr/bin/env bash
# One prepared check for an Ascend NPU server: synthetic AlexNet (alexnet_modelzoo, 224 px, 1000 classes)
# trained by main.py --backend=npu for STEPS steps in each precision mode, on one NPU and on all of them,
# with loop sinking (--iterations_per_loop=PER_CALL). Per run it checks that the loss fell (the mean of the
# last two logged losses below the first), and on several NPUs that every rank ended with the same weights
# (each rank's "weights identical on all N ranks: checksum X" line, the same X everywhere); it prints one
# JSON line with the throughput after the first loop call, then one summary line per mode (scaling
# efficiency) and a final line with "ok". Exit status 0 only when every check passed. The JSON lines are
# also written to npu_check.jsonl (or $OUT/npu_check.jsonl when $OUT is set; the dry run's to /tmp). docs/npu.md says what to send.
#
#   bash bench/npu_check.sh                        # on the NPU server, from the repository root
#   NPUS=4 STEPS=300 bash bench/npu_check.sh       # the first 4 NPUs, longer runs
#   NPU_CHECK_DRY_RUN=1 bash bench/npu_check.sh    # anywhere: the same flow on the CPU, through the test
#                                                  # stand-in of npu_device (tests/fakes), tiny sizes, 2 ranks
#
# Environment: PYTHON (interpreter with TensorFlow 2.6 + npu_device; default python3), NPUS (default: every
# /dev/davinciN device), STEPS (200), PER_CALL (50), BATCH (per NPU, 128), LR (0.01), MODES (the precision
# modes, default "allow_mix_precision allow_mix_precision_bf16 force_fp32"), RUN_TIMEOUT (seconds per run,
# 1800), KEEP (1: keep the run directories).
set -u -o pipefail
cd "$(dirname "$0")/.."

DRY=${NPU_CHECK_DRY_RUN:-0}
STEPS=${STEPS:-200}
PER_CALL=${PER_CALL:-50}
BATCH=${BATCH:-128}
LR=${LR:-0.01}
SIZE=224
CLASSES=1000
MODES=${MODES:-"allow_mix_precision allow_mix_precision_bf16 force_fp32"}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/npu_check.XXXXXX)
RESULTS=$WORK/results.jsonl
EXTRA=()

if [ "$DRY" = 1 ]; then
  # The CPU stand-in of the adapter (tests/fakes/npu_device), as the test suite runs it.
  if [ -x .venv/bin/python ] && [ "$PYTHON" = python3 ]; then PYTHON=.venv/bin/python; fi
  STEPS=8; PER_CALL=2; BATCH=2; SIZE=63; CLASSES=4; NPUS=${NPUS:-2}
  export PYTHONPATH="$PWD/tests/fakes:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  export TF_USE_LEGACY_KERAS=1 NPU_STANDIN_RENDEZVOUS_DIR=$WORK TF_CPP_MIN_LOG_LEVEL=2
  for i in $(seq 0 $((NPUS - 1))); do
    printf 'address_%d=192.168.%d.101\nnetmask_%d=255.255.255.0\n' "$i" $((100 + i)) "$i"
  done > "$WORK/hccn.conf"
  EXTRA=(--hccn_conf="$WORK/hccn.conf" --synthetic_train_images=64)
fi
if [ -z "${NPUS:-}" ]; then
  NPUS=$(ls /dev 2>/dev/null | grep -cE '^davinci[0-9]+$')
fi
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi

emit() { echo "$1" | tee -a "$RESULTS"; }

NPU_SMI=$( (npu-smi info -l 2>/dev/null || echo "npu-smi not found") | head -n 6 | tr '\n"\\' ' ' | tr -s ' ')
emit "{\"bench\": \"npu_check\", \"npus\": $NPUS, \"dry_run\": $DRY, \"steps\": $STEPS, \"per_call\": $PER_CALL, \"batch_per_npu\": $BATCH, \"image_size\": $SIZE, \"npu_smi\": \"$NPU_SMI\", \"cann\": \"${ASCEND_TOOLKIT_HOME:-unknown}\", \"date\": \"$(date -u +%FT%TZ)\"}"

if ! "$PYTHON" -c "import npu_device" >/dev/null 2>&1; then
  emit "{\"bench\": \"npu_check\", \"skipped\": \"npu_device does not import with $PYTHON: source CANN's set_env.sh, or set PYTHON\"}"
  exit 2
fi
if [ "$NPUS" -lt 1 ]; then
  emit "{\"bench\": \"npu_check\", \"skipped\": \"no NPU found (no /dev/davinciN); set NPUS\"}"
  exit 2
fi

# One JSON line for one finished run: loss fell, ranks agree, throughput. Exit 1 if a check failed.
analyse() {  # analyse MODE N DIR STATUS
  "$PYTHON" - "$@" "$BATCH" "$PER_CALL" <<'PY'
import glob, json, os, re, sys
mode, n, run_dir, status, batch, per_call = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6])
line = {"bench": "npu_check", "precision_mode": mode, "npus": n, "exit_status": status}
rank0 = run_dir if n == 1 else os.path.join(run_dir, "0")
records = []
metrics = os.path.join(rank0, "metrics.jsonl")
if os.path.exists(metrics):
    with open(metrics) as f:
        records = [r for r in (json.loads(x) for x in f if x.strip()) if r.get("type") == "train"]
losses = [r["loss"] for r in records]
finite = bool(losses) and all(x == x and abs(x) != float("inf") for x in losses)
if len(losses) >= 3 and finite:
    last = sum(losses[-2:]) / 2.0
    line.update(loss_first=round(losses[0], 4), loss_last=round(last, 4), loss_fell=last < losses[0])
else:
    line.update(loss_fell=False, losses=losses)
timed = [r for r in records if r["step"] > per_call]
if timed:
    steps = timed[-1]["step"] - max([r["step"] for r in records if r["step"] <= per_call] or [0])
    seconds = sum(r["interval_seconds"] for r in timed)
    line.update(images_per_second=round(batch * n * steps / seconds, 1), steps_timed=steps)
if n > 1:
    sums = []
    for rank in range(n):
        logs = glob.glob(os.path.join(run_dir, str(rank), "*_training.log"))
        text = open(logs[0]).read() if logs else ""
        found = re.findall(r"weights identical on all %d ranks: checksum (\S+)" % n, text)
        sums.append(found[-1] if found else None)
    line.update(weights_equal=None not in sums and len(set(sums)) == 1, checksums=sorted(set(map(str, sums))))
ok = status == 0 and line["loss_fell"] and line.get("weights_equal", True) and "images_per_second" in line
line["ok"] = bool(ok)
print(json.dumps(line))
sys.exit(0 if ok else 1)
PY
}

FAILED=0
for mode in $MODES; do
  for n in $(printf '%s\n' 1 "$NPUS" | sort -un); do
    dir=$WORK/${mode}_${n}p
    args=(main.py --backend=npu --synthetic --model=alexnet_modelzoo --image_size=$SIZE --num_classes=$CLASSES
          --batch_size=$BATCH --precision_mode="$mode" --max_train_steps=$STEPS --iterations_per_loop=$PER_CALL
          --save_summary_steps=$PER_CALL --nodo_checkpoint --warmup_epochs=0 --lr="$LR" --lr_schedule=constant
          --initializer=torchvision --seed=1 --log_dir="$dir" ${EXTRA[@]+"${EXTRA[@]}"})
    if [ "$n" -gt 1 ]; then
      args+=(--rank_size="$n" --npu_device_ids="$(seq -s, 0 $((n - 1)))" --job_id="npu-check-$$-$mode")
    fi
    if command -v timeout >/dev/null 2>&1; then
      timeout "$RUN_TIMEOUT" "$PYTHON" "${args[@]}" > "$dir.log" 2>&1
    else
      "$PYTHON" "${args[@]}" > "$dir.log" 2>&1
    fi
    status=$?
    if ! analyse "$mode" "$n" "$dir" "$status" | tee -a "$RESULTS"; then
      FAILED=1
      echo "{\"bench\": \"npu_check\", \"precision_mode\": \"$mode\", \"npus\": $n, \"last_lines\": \"$(tail -5 "$dir.log" | tr '"\\\n' "' |")\"}" | tee -a "$RESULTS"
    fi
  done
done

# Scaling per mode: images/s on all NPUs / (NPUS x images/s on one).
"$PYTHON" - "$RESULTS" "$NPUS" "$FAILED" <<'PY' | tee -a "$RESULTS"
import json, sys
path, npus, failed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [r for r in (json.loads(x) for x in open(path) if x.strip()) if "ok" in r]
for mode in sorted({r["precision_mode"] for r in runs}):
    ips = {r["npus"]: r.get("images_per_second") for r in runs if r["precision_mode"] == mode}
    if npus > 1 and ips.get(1) and ips.get(npus):
        print(json.dumps({"bench": "npu_check_scaling", "precision_mode": mode, "npus": npus,
                          "efficiency": round(ips[npus] / (npus * ips[1]), 3)}))
print(json.dumps({"bench": "npu_check_summary", "runs": len(runs), "ok": not failed and all(r["ok"] for r in runs)}))
PY

if [ -n "${OUT:-}" ]; then KEPT=$OUT/npu_check.jsonl; elif [ "$DRY" = 1 ]; then KEPT=/tmp/npu_check_dry_run.jsonl
else KEPT=npu_check.jsonl; fi
cp "$RESULTS" "$KEPT" && echo "results: $KEPT" >&2
exit $FAILED
