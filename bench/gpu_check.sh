#!/usr/bin/env bash
# One prepared check for a lent GPU machine: synthetic AlexNet training throughput on one GPU,
# ours (main.py --backend=gpu) in fp32, bf16 and bf16 + XLA at batch 256, 224x224, 1000 classes,
# PyTorch's initialisation (--version=torchvision), next to the same network in PyTorch (fp32, bf16 autocast, bf16 + torch.compile) if it is
# installed there. Prints JSON lines (and copies them to $OUT/gpu_check.jsonl when $OUT is set).
#
#   bash bench/gpu_check.sh                 # on the GPU machine, from the repository root
#   GPU_CHECK_DRY_RUN=1 bash bench/gpu_check.sh   # here: the same flow on the CPU, tiny sizes
#
# Environment: PYTHON (interpreter with TensorFlow; default .venv/bin/python, else python3),
# TORCH_PYTHON (with PyTorch; default python3), BATCH (256), STEPS (timed, 40), WARMUP (10).
# A side that cannot run (no TensorFlow, no GPU, no PyTorch) prints a JSON line saying why.
set -u
cd "$(dirname "$0")/.."

DRY=${GPU_CHECK_DRY_RUN:-0}
BATCH=${BATCH:-256}
STEPS=${STEPS:-40}
WARMUP=${WARMUP:-10}
SIZE=224
BACKEND=gpu
DEVICE=cuda
if [ "$DRY" = 1 ]; then BATCH=4; STEPS=4; WARMUP=2; SIZE=63; BACKEND=cpu; DEVICE=cpu; fi
PER_CALL=$(( WARMUP < 10 ? WARMUP : 10 ))
WARMUP=$(( (WARMUP + PER_CALL - 1) / PER_CALL * PER_CALL ))
STEPS=$(( (STEPS + PER_CALL - 1) / PER_CALL * PER_CALL ))

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TORCH_PYTHON=${TORCH_PYTHON:-python3}
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
RESULTS=$WORK/results.jsonl
trap 'rm -rf "$WORK"' EXIT

emit() { echo "$1" | tee -a "$RESULTS"; }

# The machine.
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
else
  GPU="none (nvidia-smi not found)"
fi
emit "{\"bench\": \"gpu_check\", \"machine\": \"$GPU\", \"dry_run\": $DRY, \"batch\": $BATCH, \"image_size\": $SIZE, \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"date\": \"$(date -u +%FT%TZ)\"}"

# Ours: main.py on the gpu backend, exactly as users run it.
TF_OK=$("$PYTHON" - <<'PY' 2>/dev/null
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
print(f"{tf.__version__} gpus={len(tf.config.list_physical_devices('GPU'))}")
PY
)
if [ -z "$TF_OK" ]; then
  emit "{\"bench\": \"gpu_check\", \"implementation\": \"ours\", \"skipped\": \"TensorFlow does not import with $PYTHON\"}"
elif [ "$BACKEND" = gpu ] && [ "${TF_OK##*gpus=}" = 0 ]; then
  emit "{\"bench\": \"gpu_check\", \"implementation\": \"ours\", \"skipped\": \"TensorFlow $TF_OK sees no GPU\"}"
else
  for config in "fp32" "bf16" "bf16 --xla"; do
    set -- $config
    precision=$1; xla=${2:-}
    dir=$WORK/ours_${precision}${xla:+_xla}
    if "$PYTHON" main.py --backend=$BACKEND --synthetic --model=alexnet --image_size=$SIZE --batch_size=$BATCH \
        --num_classes=1000 --version=torchvision --precision="$precision" $xla --max_train_steps=$((WARMUP + STEPS)) \
        --normalize_on=device \
        --iterations_per_loop=$PER_CALL --save_summary_steps=$PER_CALL --nodo_checkpoint --warmup_epochs=0 \
        --lr=0.01 --log_dir="$dir" > "$dir.log" 2>&1; then
      "$PYTHON" bench/tf_metrics_summary.py "$dir/metrics.jsonl" --global_batch=$BATCH --warmup_steps=$WARMUP \
        --bench=gpu_check --implementation=ours --framework="tensorflow ${TF_OK% gpus=*}" --backend=$BACKEND \
        --precision="$precision" --xla="${xla:+on}" --batch=$BATCH --image_size=$SIZE | tee -a "$RESULTS"
    else
      emit "{\"bench\": \"gpu_check\", \"implementation\": \"ours\", \"precision\": \"$precision\", \"xla\": \"${xla:+on}\", \"failed\": \"$(tail -3 "$dir.log" | tr '\"\\\n' "' |")\"}"
    fi
  done
fi

# The peer: PyTorch, if installed there.
if "$TORCH_PYTHON" -c "import torch" >/dev/null 2>&1; then
  TORCH_CONFIGS=("fp32" "bf16" "bf16 --compile")
  # torch.compile on a CPU builds C++ for minutes: the dry run leaves it out.
  if [ "$DRY" = 1 ]; then TORCH_CONFIGS=("fp32" "bf16"); fi
  for config in "${TORCH_CONFIGS[@]}"; do
    set -- $config
    "$TORCH_PYTHON" bench/torch_alexnet_step.py --device=$DEVICE --precision="$1" ${2:-} --batch=$BATCH \
      --image_size=$SIZE --steps=$STEPS --warmup_steps=$WARMUP 2> "$WORK/torch.err" | tee -a "$RESULTS" \
      || emit "{\"bench\": \"gpu_check\", \"implementation\": \"pytorch\", \"precision\": \"$1\", \"failed\": \"$(tail -2 "$WORK/torch.err" | tr '\"\\\n' "' |")\"}"
  done
else
  emit "{\"bench\": \"gpu_check\", \"implementation\": \"pytorch\", \"skipped\": \"torch does not import with $TORCH_PYTHON\"}"
fi

if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT/gpu_check.jsonl"; fi
