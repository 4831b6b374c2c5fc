"""Train and evaluate image classifiers from the zoo on CPU, GPU or Ascend NPU.

    python main.py --model=alexnet --backend=npu --rank_size=8 --data_dir=/data/imagenet
    python main.py --flagfile=configs/alexnet_imagenet_8p.flags --data_dir=/data/imagenet

Every flag of the Ascend ModelZoo recipe keeps its name and default; ``--helpfull`` lists the
flags of every backend and dataset as well.
"""

from __future__ import annotations

import os
import sys
from typing import List, Sequence

# Fewer TensorFlow C++ notices on stderr (a few start-up lines are printed regardless).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _hide_gpus_for_cpu_runs(argv: List[str], environ=os.environ) -> None:
    """A CPU run keeps TensorFlow away from CUDA, so that it prints no ``failed call to cuInit`` errors.

    Must run before TensorFlow is imported. For ``--backend=cpu``, and for ``--backend=auto`` (the
    default) on a machine without an NVIDIA driver, GPUs are hidden (``CUDA_VISIBLE_DEVICES=-1``) and
    TensorFlow's C++ log keeps only fatal messages unless ``TF_CPP_MIN_LOG_LEVEL`` was set lower than
    our default: TensorFlow still probes the driver when its devices are first listed, and logs a
    missing one as an error.
    """
    backend = "auto"
    for i, arg in enumerate(argv):
        if arg.startswith("--backend="):
            backend = arg.split("=", 1)[1]
        elif arg == "--backend" and i + 1 < len(argv):
            backend = argv[i + 1]
    no_driver = not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl"))
    if backend == "cpu" or (backend == "auto" and no_driver):
        if backend == "cpu":
            environ["CUDA_VISIBLE_DEVICES"] = "-1"
        if environ.get("TF_CPP_MIN_LOG_LEVEL", "2") == "2":
            environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


if __name__ == "__main__":
    _hide_gpus_for_cpu_runs(sys.argv[1:])

from absl import app, flags, logging  # noqa: E402 - after the environment is set for TensorFlow

import registry  # noqa: E402

FLAGS = flags.FLAGS

# -- what to run ------------------------------------------------------------------------------------
flags.DEFINE_string("model", "alexnet", "Registered model name (see --list).")
flags.DEFINE_string("backend", "auto", "Device backend: cpu, gpu, npu, or auto (npu if its adapter loads, else "
                    "gpu if one is visible, else cpu; see --list).")
flags.DEFINE_string("dataset", None, "Registered dataset name; default: synthetic with --synthetic, "
                    "else inferred from --data_dir.")
flags.DEFINE_list("extra_modules", [], "Python modules (or .py files) to import first; they register "
                  "their own models, backends or datasets.")
flags.DEFINE_enum("mode", "train", ["train", "evaluate", "train_and_evaluate", "predict", "export"],
                  "What to run: train; evaluate every checkpoint; train_and_evaluate; predict --image; "
                  "export a SavedModel (see docs/evaluation.md).")
flags.DEFINE_bool("list", False, "Print the registered models, backends and datasets, then exit.")

# -- the recipe's flags (names and defaults as in its train.py) ------------------------------------
flags.DEFINE_string("data_dir", None, "Train data dir: TFRecord shards or train/ and val/ image folders.")
flags.DEFINE_integer("num_classes", None, "Number of classes (default: the dataset's own; 1000 for "
                     "ImageNet).", lower_bound=1)
flags.DEFINE_integer("image_size", None, "Image size of the model's input (default: the model's, 224).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Mini-batch size per device.", lower_bound=1)
flags.DEFINE_string("pretrained", None, "Checkpoint (prefix or directory) whose weights training starts from, "
                    "unless --checkpoint_dir already holds a checkpoint to resume.")
flags.DEFINE_list("restore_exclude", None, "--pretrained: layers (fnmatch patterns) that keep their fresh "
                  "weights, for fine-tuning on other classes (default: the model's classifier, e.g. logits for "
                  "alexnet, fc for resnets); --restore_exclude= (empty) restores all.")
flags.DEFINE_float("lr", 0.06, "Peak learning rate, for the global batch.", lower_bound=0.0)
flags.DEFINE_float("max_epochs", 150, "Max number of epochs to train the model.", lower_bound=0.0)
flags.DEFINE_float("warmup_epochs", 5, "Epochs of linear learning-rate warm-up.", lower_bound=0.0)
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay (total_loss = loss + weight_decay x sum of l2_loss).",
                   lower_bound=0.0)
flags.DEFINE_float("norm_weight_decay", None, "Weight decay of normalisation layers' parameters (batch/layer "
                   "norm; default: --weight_decay). torchvision's --norm-weight-decay.", lower_bound=0.0)
flags.DEFINE_float("bias_weight_decay", None, "Weight decay of every bias, normalisation layers' included "
                   "(default: as the other rules say). torchvision's --bias-weight-decay.", lower_bound=0.0)
flags.DEFINE_float("embedding_weight_decay", None, "Weight decay of the model's embeddings (ViT's class token and "
                   "position embedding; default: --weight_decay). torchvision's --transformer-embedding-decay.",
                   lower_bound=0.0)
flags.DEFINE_float("momentum", 0.9, "Momentum.", lower_bound=0.0)
flags.DEFINE_bool("use_nesterov", True, "Nesterov momentum (--nouse_nesterov to switch off).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing of the cross entropy.", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("save_summary_steps", 100, "Logging interval in steps.", lower_bound=1)
# absl.logging defines --log_dir for its own log files; the recipe's flag of that name takes its place
# (absl reads it only if asked to write log files, which this project never does).
if "log_dir" in FLAGS:
    delattr(FLAGS, "log_dir")
flags.DEFINE_string("log_dir", None, "Where the log and checkpoints go (default: results/<N>p/<rank>).")
flags.DEFINE_string("log_name", "alexnet_training.log", "Name of the log file.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Interval between checkpoints, in steps.", lower_bound=1)
flags.DEFINE_string("checkpoint_dir", None, "Checkpoint directory (default: --log_dir).")
flags.DEFINE_bool("allow_recipe_change", False, "Resume a checkpoint although settings that change its meaning "
                  "differ from the run that wrote it (model, classes, image size, global batch, optimizer, lr "
                  "schedule); the log says what changed. Without it such a resume is refused (docs/failures.md).")

# -- evaluation, inference and export (docs/evaluation.md) -------------------------------------------
flags.DEFINE_string("checkpoint_path", None, "evaluate/predict/export: this checkpoint (DIR/model.ckpt-N) "
                    "instead of those in --checkpoint_dir.")
flags.DEFINE_integer("eval_batch_size", None, "Validation batch per device (default: --batch_size, which "
                     "also gives the epoch column).", lower_bound=1)
flags.DEFINE_list("image", [], "predict: image files (JPEG, PNG, ...), comma-separated.")
flags.DEFINE_string("label_map", None, "predict/export: label map file (<label><TAB><name> lines); default: "
                    "label_map.txt beside the checkpoint, if there is one.")
flags.DEFINE_string("export_dir", None, "export: directory to create for the SavedModel (must not exist).")
flags.DEFINE_integer("max_train_steps", None, "Training steps; when set, overrides --max_epochs.",
                     lower_bound=1)
flags.DEFINE_bool("synthetic", False, "Use synthetic data (no file is read).")
flags.DEFINE_string("initializer", None, "Weight initialisation of models that offer a choice (alexnet: he_uniform, "
                    "the default, xavier or torchvision; see --list). Default: the model's own.")
flags.DEFINE_alias("version", "initializer")  # the Ascend recipe's name for it
flags.DEFINE_float("dropout", None, "Dropout rate of the model (default: the model's own; 0 switches dropout "
                   "off, e.g. to compare runs step by step).", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("stochastic_depth_rate", None, "Stochastic depth rate of models that have it (efficientnet, "
                   "convnext; default: the model's own).", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_bool("do_checkpoint", True, "Save checkpoints (--nodo_checkpoint to switch off).")
flags.DEFINE_bool("sync_bn", False, "Synchronised batch norm: batch statistics over the global batch of all "
                  "replicas and workers instead of each replica's own (tf.distribute backends).")
flags.DEFINE_integer("rank_size", 1, "Number of devices that train together.", lower_bound=1)
flags.DEFINE_integer("group_size", 1, "Number of servers (hosts) the devices are spread over.", lower_bound=1)
flags.DEFINE_integer("iterations_per_loop", 1251, "Steps per device loop (one tf.function call); a call "
                     "also ends at each log line and checkpoint.", lower_bound=1)
flags.DEFINE_float("epochs_between_evals", 5, "train_and_evaluate: epochs between evaluations.", lower_bound=0.0)
flags.DEFINE_integer("max_checkpoint_to_save", 5, "Newest checkpoints to keep.", lower_bound=1)

# -- augmentation (docs/data.md; torchvision references' names; file-based datasets, not --synthetic) -----
flags.DEFINE_enum("auto_augment", None, ["none", "imagenet", "ra", "ta_wide"], "Per-image policy after the crop "
                  "and flip: AutoAugment's ImageNet policy, RandAugment or TrivialAugmentWide (default: none).")
flags.DEFINE_integer("ra_num_ops", None, "RandAugment: operations per image (default 2).", lower_bound=0)
flags.DEFINE_integer("ra_magnitude", None, "RandAugment: magnitude bin, 0..30 (default 9).", lower_bound=0,
                     upper_bound=30)
flags.DEFINE_float("random_erase", None, "Probability of random erasing per training image (default 0: off).",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("random_erase_value", None, ["zero", "random"], "Random erasing fill: 'zero' (the pixel that "
                  "normalises to 0, the recipe's mean; torchvision's value=0, the default) or 'random' noise.")
flags.DEFINE_float("mixup_alpha", None, "Batch-level mixup, Beta(alpha, alpha) weights; labels become soft "
                   "(default 0: off).", lower_bound=0.0)
flags.DEFINE_float("cutmix_alpha", None, "Batch-level cutmix, Beta(alpha, alpha) box areas; with --mixup_alpha "
                   "each batch uses one of the two at random (default 0: off).", lower_bound=0.0)
flags.DEFINE_integer("train_crop_size", None, "Training crop size; models are built for one input size, so it "
                     "sets --image_size when that is not given, and must equal it otherwise.", lower_bound=1)
flags.DEFINE_integer("val_crop_size", None, "Evaluation crop size; like --train_crop_size (both, if given, must "
                     "be equal).", lower_bound=1)
flags.DEFINE_integer("val_resize_size", None, "Evaluation resize before the central crop (default: the model's, "
                     "e.g. 256 for 224, scaled with --image_size).", lower_bound=1)
flags.DEFINE_enum("interpolation", None, ["bilinear", "bicubic"], "Resize filter of training and evaluation "
                  "crops (default: the model's).")

# -- the shared optimizer stack ----------------------------------------------------------------------
flags.DEFINE_enum("optimizer", "momentum", ["momentum", "sgd", "adam", "rmsprop", "adamw", "lamb", "lars",
                                             "rmsprop_tf", "rmsprop_torch"],
                  "Optimizer: momentum (Nesterov with --use_nesterov), sgd, adam, rmsprop (Keras'), adamw "
                  "(torch's AdamW, decoupled decay), lamb, lars, rmsprop_tf (TF1's: eps inside the root, mean "
                  "square from 1, as the MobileNet/EfficientNet papers), rmsprop_torch (torch's RMSprop, which "
                  "torchvision's --opt rmsprop uses with --optimizer_epsilon=0.0316 --rmsprop_decay=0.9).")
flags.DEFINE_float("optimizer_epsilon", 1e-7, "Epsilon of adam, adamw, lamb and the rmsprops.", lower_bound=0.0)
flags.DEFINE_float("adam_beta1", 0.9, "adam/adamw/lamb: first-moment decay.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("adam_beta2", 0.999, "adam/adamw/lamb: second-moment decay.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("rmsprop_decay", 0.9, "rmsprop*: decay of the mean square (Keras' rho, torch's alpha).",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("lars_trust_coefficient", 0.001, "lars: trust coefficient eta of the layer-wise rate.",
                   lower_bound=0.0)
flags.DEFINE_enum("lr_schedule", "cosine", ["cosine", "constant", "piecewise", "exponential", "polynomial"],
                  "Decay after warm-up (see --lr_schedule_unit, --lr_decay_after_warmup).")
flags.DEFINE_list("lr_decay_boundaries", [], "piecewise: epochs at which the lr is multiplied by "
                  "--lr_decay_factor, e.g. 30,60,80.")
flags.DEFINE_float("lr_decay_factor", 0.1, "piecewise/exponential: multiplier per decay (torchvision's --lr-gamma).",
                   lower_bound=0.0)
flags.DEFINE_float("lr_decay_epochs", 1.0, "exponential: epochs between decays (torchvision's StepLR "
                   "--lr-step-size; 1 is its ExponentialLR).", lower_bound=1e-9)
flags.DEFINE_integer("lr_decay_steps", None, "exponential: optimizer steps between decays, instead of "
                     "--lr_decay_epochs.", lower_bound=1)
flags.DEFINE_float("lr_min", 0.0, "cosine/polynomial: the lr they end at (torchvision's --lr-min).", lower_bound=0.0)
flags.DEFINE_float("lr_power", 1.0, "polynomial: (1 - t/T) ** power.", lower_bound=0.0)
flags.DEFINE_enum("lr_schedule_unit", "epoch", ["epoch", "step"], "epoch: the lr changes at epoch boundaries "
                  "(the Ascend recipe; torchvision's scheduler.step() per epoch); step: at every step.")
flags.DEFINE_enum("lr_warmup_method", "linear", ["linear", "constant"], "Warm-up over --warmup_epochs: linear "
                  "from --lr_warmup_decay x lr to lr, or constant at --lr_warmup_decay x lr.")
flags.DEFINE_float("lr_warmup_decay", None, "The warm-up's start factor (torchvision's --lr-warmup-decay). Unset: "
                   "the Ascend warm-up, lr x (i + 1) / warmup_steps at step i.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("lr_decay_after_warmup", False, "The decay counts its epochs from the end of the warm-up "
                  "(torchvision's SequentialLR: cosine over max_epochs - warmup_epochs) instead of from step 0.")
flags.DEFINE_bool("model_ema", False, "Keep an exponential moving average of the weights (torchvision's "
                  "--model-ema); evaluation and export use it, checkpoints save it.")
flags.DEFINE_float("model_ema_decay", 0.99998, "--model_ema: decay per update before torchvision's adjustment "
                   "1 - min(1, (1 - decay) x global_batch x model_ema_steps / max_epochs).", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("model_ema_steps", 32, "--model_ema: update the average every this many steps.", lower_bound=1)
flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16", "fp16"], "Compute precision: mixed bfloat16 or "
                  "float16 (with dynamic loss scaling), or fp32. auto: bf16 on CPUs with AMX or AVX-512 BF16 and GPUs "
                  "of compute capability >= 8.0, fp16 on older GPUs, fp32 otherwise; NPUs use --precision_mode.")

# -- the training step (docs/failures.md) ------------------------------------------------------------
flags.DEFINE_enum("nan_policy", "stop", ["stop", "skip_step"], "A step whose loss or gradients are not finite is "
                  "never applied. stop: end training, naming the step and the last good checkpoint; skip_step: "
                  "drop that update, count it, and stop after --max_consecutive_skips in a row.")
flags.DEFINE_integer("max_consecutive_skips", 5, "--nan_policy=skip_step: non-finite steps in a row that stop "
                     "training.", lower_bound=1)
flags.DEFINE_float("clip_grad_norm", 0.0, "Clip the gradient's global norm (of the gradient summed over all "
                   "replicas, weight decay included) to this; 0: no clipping (torchvision's --clip-grad-norm).",
                   lower_bound=0.0)
flags.DEFINE_enum("normalize_on", "auto", ["auto", "device", "host"], "Where images are normalised: device (uint8 "
                  "batches cross to the accelerator, a quarter of the bytes, and the step normalises) or host "
                  "(the input pipeline hands float32). auto: device, except on CPUs, where it measured no faster.")
flags.DEFINE_integer("seed", None, "Random seed of weights, shuffling and augmentation.")

# -- bad data (docs/data.md, "Unreadable images and records") ---------------------------------------
flags.DEFINE_integer("max_bad_images", 10, "Training skips unreadable images and damaged TFRecord records, counts "
                     "them (each once) and names them in the log; one more than this many (per process) stops it "
                     "with a message naming them. 0 stops at the first.", lower_bound=0)
flags.DEFINE_bool("strict", False, "Stop at the first unreadable image or damaged record, in training and in "
                  "evaluation (which otherwise scores the readable images and reports how many it could not read).")


@flags.validator("lr_decay_boundaries", message="--lr_decay_boundaries must be increasing numbers of epochs")
def _check_boundaries(values: List[str]) -> bool:
    try:
        numbers = [float(v) for v in values or []]
    except ValueError:
        return False
    return numbers == sorted(numbers)


def validate_names(flags_obj) -> None:
    """Checks the registry names in flags; raises ``app.UsageError`` naming the flag."""
    checks = [("model", registry.MODELS, flags_obj.model), ("backend", registry.BACKENDS, flags_obj.backend)]
    if flags_obj.dataset:
        checks.append(("dataset", registry.DATASETS, flags_obj.dataset))
    for flag, reg, value in checks:
        try:
            reg.entry(value)
        except registry.RegistryError as e:
            raise app.UsageError(f"--{flag}={value}: {e}") from None
    if flags_obj.initializer is not None:
        model = registry.MODELS.entry(flags_obj.model).name
        choices = registry.MODELS.metadata(model).get("initializers")
        if not choices:
            raise app.UsageError(f"--initializer={flags_obj.initializer}: model {model} has no initialiser choice; "
                                 "leave the flag out.")
        if flags_obj.initializer not in choices:
            raise app.UsageError(f"--initializer={flags_obj.initializer}: must be one of {', '.join(sorted(choices))}.")


def print_registries(model_patterns: Sequence[str] = ()) -> None:
    """Prints the zoo (parameters, input size, reference accuracy) and the other registries.

    Args:
        model_patterns: fnmatch patterns that filter the models (``--list --model='resnet*'``); other
            registries are printed only without a filter.
    """

    names = registry.MODELS.list(list(model_patterns) or None)
    print(f"models ({len(names)}):")
    print(f"  {'name':22s} {'params':>12s} {'input':>5s} {'eval':>9s} {'top1/top5':>15s}  description")
    for name in names:
        meta, recipe = registry.MODELS.metadata(name), zoo.get_recipe(name)
        params = f"{meta['params']:,}" if meta.get("params") else "?"
        accuracy = (f"{recipe.reference_top1:.3f}/{recipe.reference_top5:.3f}"
                    if recipe.reference_top1 and recipe.reference_top5 else "-")
        evaluation = f"{recipe.eval_resize}{'b' if recipe.interpolation == 'bicubic' else ''}"
        print(f"  {name:22s} {params:>12s} {recipe.input_size:>5d} {evaluation:>9s} {accuracy:>15s}  "
              f"{meta.get('description', '')}")
    if model_patterns:
        return
    print("  (eval: resize before the central crop; b = bicubic. Accuracy: the reference weights' ImageNet-1k "
          "top-1/top-5.)")
    for kind, reg in (("backends", registry.BACKENDS), ("datasets", registry.DATASETS)):
        print(f"{kind}:")
        for entry_name in reg.list():
            desc = reg.metadata(entry_name).get("description", "")
            print(f"  {entry_name:20s} {desc}")


def _preload_extra_modules(argv: Sequence[str]) -> None:
    """Imports ``--extra_modules`` before flag parsing so that plugins may define flags."""
    for i, arg in enumerate(argv):
        value = None
        if arg.startswith("--extra_modules="):
            value = arg.split("=", 1)[1]
        elif arg == "--extra_modules" and i + 1 < len(argv):
            value = argv[i + 1]
        if value:
            registry.import_extra_modules(value)


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    registry.import_extra_modules(FLAGS.extra_modules)
    if FLAGS.list:
        print_registries([FLAGS.model] if FLAGS["model"].present else [])
        return 0
    try:
        validate_names(FLAGS)
        datasets.pipeline.resolve_crop_sizes(FLAGS)
    except (app.UsageError, ValueError) as e:  # one clear line, not the whole usage text
        print(f"error: {e}", file=sys.stderr)
        return 2
    from modes import runner  # heavy imports (TensorFlow) only once flags are valid

    logging.set_verbosity(logging.INFO)
    from runs.checkpoints import CheckpointSaveError
    from runs.preemption import PREEMPTED_EXIT_CODE, TrainingPreempted

    try:
        return runner.run(FLAGS)
    except TrainingPreempted as e:  # SIGTERM/SIGINT: saved; a distinct code tells schedulers to requeue
        print(str(e), file=sys.stderr, flush=True)
        return PREEMPTED_EXIT_CODE
    except (ValueError, FileNotFoundError, FloatingPointError, CheckpointSaveError) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 1


# Registries and their packages are imported at module import so that every backend's and
# dataset's flags exist before parsing (and show up in --helpfull).
import backends  # noqa: E402,F401
import datasets  # noqa: E402,F401
import zoo  # noqa: E402,F401

if __name__ == "__main__":
    _preload_extra_modules(sys.argv[1:])
    app.run(main)
