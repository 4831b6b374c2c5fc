"""Every setting a run has, grouped by concern: one frozen dataclass per group, one field per setting.

This module is the one place a setting is declared: its type, default, help text, validation and
role (:mod:`run_config.fields`). The command line (``main.py``), ``--help``, ``config.json``, the log's
configuration table and the resume check are all generated from these fields. Defaults are generic,
not any model's: a model's recipe (``zoo/<family>.py``) supplies its own values as the next layer
(:func:`run_config.resolve.resolve`).

Roles (see :data:`run_config.fields.ROLES`): ``meaning`` settings define what a checkpoint is (the
network, its input, its classes); later modes take them from the run's ``config.json`` and refuse a
different value. ``resume`` settings change what training does from a step on; resuming with a
different value needs ``--allow_recipe_change``. ``free`` settings can change at any time.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple

from run_config.fields import setting

__all__ = [
    "AUTO_AUGMENT_POLICIES",
    "CROP_SAMPLERS",
    "DISTORT_COLOR_MODES",
    "ERASE_VALUES",
    "EVAL_RESIZE_MODES",
    "GROUPS",
    "MODES",
    "NPU_BF16_MODES",
    "NPU_FP16_MODES",
    "NPU_PRECISION_MODES",
    "TRAIN_INTERPOLATIONS",
    "TRAIN_RESIZE_MODES",
    "AugmentConfig",
    "CheckpointConfig",
    "DataConfig",
    "DistributionConfig",
    "EvaluationConfig",
    "ExportConfig",
    "FineTuneConfig",
    "LoggingConfig",
    "LoopConfig",
    "ModelConfig",
    "NPUConfig",
    "OptimizerConfig",
    "PrecisionConfig",
    "PredictConfig",
    "RegularizationConfig",
    "RunConfig",
    "ScheduleConfig",
    "group_fields",
]

MODES = ("train", "evaluate", "train_and_evaluate", "predict", "export")
# The choices of the input transforms (datasets/ validates with the same tuples).
AUTO_AUGMENT_POLICIES = ("none", "imagenet", "ra", "ta_wide")
EVAL_RESIZE_MODES = ("shorter", "square")
CROP_SAMPLERS = ("torchvision", "distorted_bbox")
TRAIN_RESIZE_MODES = ("fast", "exact")
TRAIN_INTERPOLATIONS = ("bilinear", "bicubic", "random")
DISTORT_COLOR_MODES = ("none", "fast", "full")
ERASE_VALUES = ("zero", "random")
# The Ascend adapter's precision modes (docs/npu.md). Float16 modes need loss scaling; the others do not.
NPU_FP16_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "force_fp16", "allow_fp32_to_fp16",
                  "cube_fp16in_fp32out")
NPU_BF16_MODES = ("allow_mix_precision_bf16", "allow_fp32_to_bf16")
NPU_PRECISION_MODES = ("force_fp32", "must_keep_origin_dtype") + NPU_FP16_MODES + NPU_BF16_MODES


def _registry_names(kind: str):
    """The names of a registry (optimizers, schedules), read when a value is validated."""

    def names():
        import registry

        return registry.OPTIMIZERS.list() if kind == "optimizer" else registry.SCHEDULES.list()

    return names


def _increasing(values) -> Optional[str]:
    return None if list(values) == sorted(values) else "must be increasing numbers of epochs."


def _augment_policy(value: str) -> Optional[str]:
    """torchvision's policy names, or a timm RandAugment string (``rand-m9-mstd0.5-inc1``; its sections are
    checked when the pipeline is built)."""
    if value in AUTO_AUGMENT_POLICIES or re.fullmatch(r"rand(-[a-z]+[0-9.]*)*", value):
        return None
    return f"must be one of {', '.join(AUTO_AUGMENT_POLICIES)} or a timm RandAugment string (rand-m9-mstd0.5-inc1)."


def _color_jitter(values) -> Optional[str]:
    if len(values) != 4:
        return "four strengths: brightness,contrast,saturation,hue (torchvision's ColorJitter)."
    if min(values[:3]) < 0 or not 0.0 <= values[3] <= 0.5:
        return "brightness, contrast and saturation are >= 0, hue in [0, 0.5]."
    return None


def _key_values(values) -> Optional[str]:
    bad = [v for v in values if "=" not in v or not v.split("=", 1)[0].strip()]
    return f"each entry is KEY=VALUE; not {bad[0]!r}." if bad else None


@dataclass(frozen=True)
class ModelConfig:
    """The network: which model, its classes, input size and builder arguments."""

    name: str = setting("alexnet", "Registered model name (see --list).", flag="model", role="meaning")
    num_classes: Optional[int] = setting(None, "Number of classes (default: the dataset's own; 1000 for ImageNet).",
                                         minimum=1, role="meaning")
    image_size: Optional[int] = setting(None, "Input size of the model in training, in pixels: the training crop "
                                        "(default: the model recipe's; --train_crop_size sets it).", minimum=1,
                                        role="meaning")
    initializer: Optional[str] = setting(None, "Weight initialisation of models that offer a choice (alexnet: "
                                         "he_uniform, xavier or torchvision; see --list). Default: the model's own.",
                                         role="meaning", aliases=("version",))
    dropout: Optional[float] = setting(None, "Dropout rate of the model (default: the model's own; 0 switches it "
                                       "off).", minimum=0.0, maximum=0.99, role="resume")
    stochastic_depth_rate: Optional[float] = setting(None, "Stochastic depth rate of models that have it "
                                                     "(efficientnet, convnext; default: the model's own).",
                                                     minimum=0.0, maximum=0.99, role="resume")
    sync_bn: bool = setting(False, "Synchronised batch norm: statistics over the global batch of all replicas and "
                            "workers instead of each replica's own.", role="resume")
    extra_modules: Tuple[str, ...] = setting((), "Python modules (or .py files) imported first; they register their "
                                             "own models, backends or datasets.", role="meaning")


@dataclass(frozen=True)
class FineTuneConfig:
    """Starting from published or earlier weights, and what of them trains."""

    pretrained: Optional[str] = setting(None, "Weights training starts from, unless --checkpoint_dir holds a "
                                        "checkpoint to resume: 'torchvision' (the model's published torchvision "
                                        "weights, downloaded and converted without PyTorch), a torchvision .pth "
                                        "file, or a TF checkpoint (prefix or directory).", role="resume")
    restore_exclude: Optional[Tuple[str, ...]] = setting(
        None, "--pretrained: layers (fnmatch patterns) that keep their fresh weights (default: the model's "
        "classifier when --num_classes differs from the weights'; --restore_exclude= (empty) restores all).",
        role="resume")
    freeze: Tuple[str, ...] = setting((), "Layers that do not train: 'backbone' (everything but the model's "
                                      "classifier) or fnmatch patterns of layer names. Frozen batch-norm layers "
                                      "run in inference mode.", role="resume")
    head_lr_multiplier: float = setting(1.0, "Learning-rate multiplier of the classifier layers (the recipe's "
                                        "classifier patterns) relative to the rest.", minimum=0.0, role="resume")
    weights_cache_dir: Optional[str] = setting(None, "Where downloaded and converted weights are kept (default: "
                                               "$MODELZOO_CACHE or ~/.cache/modelzoo/weights).")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is read."""

    dataset: Optional[str] = setting(None, "Registered dataset name; default: synthetic with --synthetic, else "
                                     "inferred from --data_dir (see --list).")
    data_dir: Optional[str] = setting(None, "Data directory: TFRecord shards or train/ and val/ image folders.")
    synthetic: bool = setting(False, "Use synthetic data (no file is read).")
    batch_size: int = setting(32, "Mini-batch size per device (resume compares the global batch, batch_size x "
                              "replicas).", minimum=1)
    val_split: float = setting(0.0, "Carve a deterministic, class-stratified validation split of this fraction from "
                               "the training data (image folders without val/, file_list without --val_list).",
                               minimum=0.0, maximum=0.9, role="meaning")
    train_list: Optional[str] = setting(None, "file_list: CSV or text file of 'path,label' lines, the training split "
                                        "(relative paths from the list's folder; labels class names or 0-based "
                                        "integers).")
    val_list: Optional[str] = setting(None, "file_list: the validation split's list, in the same format (or carve one "
                                      "with --val_split).")
    tfds_name: Optional[str] = setting(None, "tfds: TensorFlow Datasets name, with config and version if needed "
                                       "(tf_flowers, cifar10:3.0.2), prepared in --data_dir (TFDS's data_dir).")
    tfds_train_split: str = setting("train", "tfds: the training split, in TFDS's split syntax (train, "
                                    "train[:90%]).")
    tfds_val_split: Optional[str] = setting(None, "tfds: the validation split (default: validation if the dataset "
                                            "has one, else test; train[90%:] carves one).")
    tfds_download: bool = setting(False, "tfds: download and prepare the dataset into --data_dir when it is not "
                                  "there (needs the network); default: read a prepared data_dir only.")
    shuffle_buffer: int = setting(10_000, "Training examples in the shuffle buffer (TFRecords; image folders "
                                  "shuffle their whole file list).", minimum=1)
    deterministic: bool = setting(False, "Reproducible input order and augmentation (with --seed); slower than the "
                                  "default, which lets parallel reads finish out of order.")
    input_threads: int = setting(0, "Private thread pool of the input pipeline (0: TensorFlow's shared pool).",
                                 minimum=0)
    max_bad_images: int = setting(10, "Training skips unreadable images and damaged TFRecord records, counts them "
                                  "and names them in the log; one more than this many (per process) stops it. 0 "
                                  "stops at the first.", minimum=0)
    strict: bool = setting(False, "Stop at the first unreadable image or damaged record, in training and in "
                           "evaluation.")
    label_offset: Optional[int] = setting(None, "imagenet: subtracted from each record's label (default: 1 when "
                                          "labels run 1..1000, as in the TensorFlow models layout).", minimum=0,
                                          role="meaning")
    synthetic_train_images: int = setting(1_281_167, "synthetic: epoch size of the training data (ImageNet's, so "
                                          "epochs and the lr schedule match a real run).", minimum=1)
    synthetic_val_images: int = setting(50_000, "synthetic: size of the validation split.", minimum=1)
    demo_cache_dir: Optional[str] = setting(None, "demo: where the digits are written as JPEG folders (default: "
                                            "a cache directory in the repository).")


@dataclass(frozen=True)
class AugmentConfig:
    """What enters the network: training augmentation and the evaluation transform."""

    train_crop_size: Optional[int] = setting(None, "Training crop size (torchvision's --train-crop-size): the "
                                             "--image_size the model trains at; the higher layer of the two wins.",
                                             minimum=1, role="meaning")
    val_crop_size: Optional[int] = setting(None, "Evaluation crop size (torchvision's --val-crop-size; default: "
                                           "--image_size). Another size than the training crop (FixRes) builds the "
                                           "evaluation model at it with the same weights (not for ViT).", minimum=1,
                                           role="meaning")
    val_resize_size: Optional[int] = setting(None, "Evaluation resize before the central crop (default: the "
                                             "model's, scaled with --image_size).", minimum=1, role="meaning")
    interpolation: Optional[str] = setting(None, "Resize filter of training and evaluation (default: the "
                                           "model's).", choices=("bilinear", "bicubic"), role="meaning")
    eval_resize: str = setting("shorter", "Evaluation resize: 'shorter' side to --val_resize_size (torchvision) or "
                               "'square' (the Ascend recipe's 256x256).", choices=EVAL_RESIZE_MODES, role="meaning")
    min_crop_area: Optional[float] = setting(None, "Smallest training crop, as a fraction of the image area "
                                             "(default: 0.08).", minimum=1e-3, maximum=1.0, role="resume")
    crop_sampler: str = setting("torchvision", "Training crop: torchvision's RandomResizedCrop (scale, ratio, 10 "
                                "attempts, its fallback) or TensorFlow's distorted_bbox sampler (uses ImageNet's "
                                "boxes).", choices=CROP_SAMPLERS, role="resume")
    train_resize: str = setting("fast", "Training resize: fast (decode the crop, DCT scaling, TensorFlow's "
                                "antialiased resize) or exact (full-scale crop, Pillow's resampling).",
                                choices=TRAIN_RESIZE_MODES, role="resume")
    train_interpolation: Optional[str] = setting(None, "Training resize filter: bilinear, bicubic or random (one per "
                                                 "image, timm's 'random'); default: --interpolation.",
                                                 choices=TRAIN_INTERPOLATIONS, role="resume")
    random_flip: Optional[bool] = setting(None, "Random horizontal flips in training (default: the dataset's; on "
                                          "except for the digits demo).", role="resume")
    dct_scaling: bool = setting(True, "Fast training path: decode JPEG crops at a reduced DCT scale when they are "
                                "at least twice the output size.", role="resume")
    color_jitter: Tuple[float, ...] = setting((0.0, 0.0, 0.0, 0.0), "Colour jitter strengths brightness,contrast,"
                                              "saturation,hue (torchvision's ColorJitter; 0: off).",
                                              check=_color_jitter, role="resume")
    lighting_std: float = setting(0.0, "PCA lighting noise: std of the alphas on ImageNet's eigenvectors (AlexNet "
                                  "paper, fb.resnet.torch's Lighting: 0.1; 0: off).", minimum=0.0, role="resume")
    distort_color: str = setting("none", "Inception colour distortion (TF-slim's distort_color): none, fast or "
                                 "full.", choices=DISTORT_COLOR_MODES, role="resume")
    auto_augment: str = setting("none", "Per-image policy after the crop and flip: AutoAugment's ImageNet policy "
                                "(imagenet), RandAugment (ra), TrivialAugmentWide (ta_wide), or timm's RandAugment "
                                "string (rand-m9-mstd0.5-inc1).", check=_augment_policy, role="resume")
    ra_num_ops: int = setting(2, "RandAugment: operations per image.", minimum=0, role="resume")
    ra_magnitude: int = setting(9, "RandAugment: magnitude bin, 0..30.", minimum=0, maximum=30, role="resume")
    random_erase: float = setting(0.0, "Probability of random erasing per training image (0: off).", minimum=0.0,
                                  maximum=1.0, role="resume")
    random_erase_value: str = setting("zero", "Random erasing fill: 'zero' (the pixel that normalises to 0) or "
                                      "'random' noise.", choices=ERASE_VALUES, role="resume")
    mixup_alpha: float = setting(0.0, "Batch-level mixup, Beta(alpha, alpha) weights (0: off).", minimum=0.0,
                                 role="resume")
    cutmix_alpha: float = setting(0.0, "Batch-level cutmix, Beta(alpha, alpha) box areas; with --mixup_alpha each "
                                  "batch uses one of the two (0: off).", minimum=0.0, role="resume")
    ra_sampler: bool = setting(False, "Repeated augmentation (torchvision's and DeiT's --ra-sampler): each training "
                               "image --ra_reps times per pass, the repeats on different replicas, differently "
                               "augmented; the epoch length is unchanged.", role="resume")
    ra_reps: int = setting(3, "--ra_sampler: repetitions of each image (torchvision's --ra-reps).", minimum=1,
                           role="resume")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and its hyper-parameters."""

    optimizer: str = setting("momentum", "Optimizer (see --help for the list and what each is).",
                             choices=_registry_names("optimizer"), role="resume")
    momentum: float = setting(0.9, "Momentum of momentum, lars and the rmsprops.", minimum=0.0, role="resume")
    use_nesterov: bool = setting(False, "Nesterov momentum.", role="resume")
    optimizer_epsilon: float = setting(1e-7, "Epsilon of adam, adamw, lamb and the rmsprops.", minimum=0.0,
                                       role="resume")
    adam_beta1: float = setting(0.9, "adam/adamw/lamb: first-moment decay.", minimum=0.0, maximum=1.0,
                                role="resume")
    adam_beta2: float = setting(0.999, "adam/adamw/lamb: second-moment decay.", minimum=0.0, maximum=1.0,
                                role="resume")
    rmsprop_decay: float = setting(0.9, "rmsprop*: decay of the mean square (Keras' rho, torch's alpha).",
                                   minimum=0.0, maximum=1.0, role="resume")
    lars_trust_coefficient: float = setting(0.001, "lars: trust coefficient of the layer-wise rate.", minimum=0.0,
                                            role="resume")
    clip_grad_norm: float = setting(0.0, "Clip the global gradient norm (summed over replicas, weight decay "
                                    "included) to this; 0: no clipping.", minimum=0.0, role="resume")


@dataclass(frozen=True)
class ScheduleConfig:
    """How long training runs and how the learning rate moves."""

    lr: float = setting(0.1, "Peak learning rate for --lr_reference_batch images per step; scaled linearly to the "
                        "run's global batch unless given on the command line (docs/configuration.md).",
                        minimum=0.0, role="resume")
    lr_reference_batch: Optional[int] = setting(256, "The global batch --lr is stated for (recipes and flag files); "
                                                "empty: --lr is used as it is.", minimum=1, role="resume")
    max_epochs: float = setting(90.0, "Epochs to train.", minimum=0.0, role="resume")
    max_train_steps: Optional[int] = setting(None, "Training steps; when set, overrides --max_epochs.", minimum=1)
    warmup_epochs: float = setting(0.0, "Epochs of learning-rate warm-up.", minimum=0.0, role="resume")
    lr_schedule: str = setting("cosine", "Decay after warm-up (see --help for the list).",
                               choices=_registry_names("schedule"), role="resume")
    lr_decay_boundaries: Tuple[float, ...] = setting((), "piecewise: epochs at which the lr is multiplied by "
                                                     "--lr_decay_factor, e.g. 30,60,80.", minimum=0.0,
                                                     check=_increasing, role="resume")
    lr_decay_factor: float = setting(0.1, "piecewise/exponential: multiplier per decay.", minimum=0.0, role="resume")
    lr_decay_epochs: float = setting(1.0, "exponential: epochs between decays (torchvision's StepLR step size).",
                                     minimum=1e-9, role="resume")
    lr_decay_steps: Optional[int] = setting(None, "exponential: optimizer steps between decays, instead of "
                                            "--lr_decay_epochs.", minimum=1, role="resume")
    lr_min: float = setting(0.0, "cosine/polynomial: the lr they end at.", minimum=0.0, role="resume")
    lr_power: float = setting(1.0, "polynomial: (1 - t/T) ** power.", minimum=0.0, role="resume")
    lr_schedule_unit: str = setting("epoch", "epoch: the lr changes at epoch boundaries; step: at every step.",
                                    choices=("epoch", "step"), role="resume")
    lr_warmup_method: str = setting("linear", "Warm-up: linear from --lr_warmup_decay x lr to lr, or constant at "
                                    "--lr_warmup_decay x lr.", choices=("linear", "constant"), role="resume")
    lr_warmup_decay: Optional[float] = setting(None, "The warm-up's start factor. Unset: the Ascend warm-up, "
                                               "lr x (i + 1) / warmup_steps at step i.", minimum=0.0, maximum=1.0,
                                               role="resume")
    lr_decay_after_warmup: bool = setting(False, "The decay counts its epochs from the end of the warm-up "
                                          "(torchvision's SequentialLR) instead of from step 0.", role="resume")
    lr_restart_epochs: float = setting(10.0, "cosine_restarts: epochs of the first cosine cycle (SGDR's T_0).",
                                       minimum=1e-9, role="resume")
    lr_restart_mult: float = setting(1.0, "cosine_restarts: each cycle this many times the previous one's length "
                                     "(SGDR's T_mult).", minimum=1.0, role="resume")


@dataclass(frozen=True)
class RegularizationConfig:
    """Weight decay, label smoothing and the weights' moving average."""

    weight_decay: float = setting(1e-4, "L2 weight decay (total_loss = loss + weight_decay x sum of l2_loss); "
                                  "decoupled for adamw, lamb and lars.", minimum=0.0, role="resume")
    norm_weight_decay: Optional[float] = setting(None, "Weight decay of normalisation layers' parameters (default: "
                                                 "--weight_decay).", minimum=0.0, role="resume")
    bias_weight_decay: Optional[float] = setting(None, "Weight decay of every bias (default: as the other rules "
                                                 "say).", minimum=0.0, role="resume")
    embedding_weight_decay: Optional[float] = setting(None, "Weight decay of the model's embeddings (ViT's class "
                                                      "token and position embedding; default: --weight_decay).",
                                                      minimum=0.0, role="resume")
    label_smoothing: float = setting(0.0, "Label smoothing of the cross entropy.", minimum=0.0, maximum=1.0,
                                     role="resume")
    model_ema: bool = setting(False, "Keep an exponential moving average of the weights; evaluation and export "
                              "use it, checkpoints save it.", role="meaning")
    model_ema_decay: float = setting(0.99998, "--model_ema: decay per update; --model_ema_adjust (the default) "
                                     "turns it into torchvision's 1 - min(1, (1 - decay) x global_batch x "
                                     "model_ema_steps / max_epochs).",
                                     minimum=0.0, maximum=1.0, role="resume")
    model_ema_steps: int = setting(32, "--model_ema: update the average every this many steps.", minimum=1,
                                   role="resume")
    model_ema_adjust: bool = setting(True, "--model_ema: adjust --model_ema_decay to the run as torchvision does "
                                     "(see --model_ema_decay); false: use it as given (timm's ModelEma, TensorFlow's "
                                     "ExponentialMovingAverage).", role="resume")
    model_ema_warmup: str = setting("lr_warmup", "--model_ema: how the average starts. lr_warmup: every update during "
                                    "the lr warm-up copies the weights (torchvision); none: the decay from the second "
                                    "update on (timm); num_updates: decay min(decay, (1 + n) / (10 + n)) at step n "
                                    "(TensorFlow's ExponentialMovingAverage with num_updates).",
                                    choices=("lr_warmup", "none", "num_updates"), role="resume")


@dataclass(frozen=True)
class PrecisionConfig:
    """Number formats and compilation."""

    precision: str = setting("auto", "Compute precision: mixed bf16 or fp16 (with dynamic loss scaling), or fp32. "
                             "auto: the fastest the device and model support (docs/precision.md); NPUs use "
                             "--precision_mode.", choices=("auto", "fp32", "bf16", "fp16"))
    normalize_on: str = setting("auto", "Where images are normalised: device (uint8 batches cross to the "
                                "accelerator) or host. auto: device, except on CPUs.",
                                choices=("auto", "device", "host"))
    xla: bool = setting(False, "Compile each replica's forward and backward pass with XLA (jit_compile).")
    precision_mode: str = setting("allow_mix_precision", "NPU: the adapter's precision mode (the Ascend recipe ran "
                                  "allow_mix_precision, float16 with loss scaling).", choices=NPU_PRECISION_MODES)
    npu_loss_scale: str = setting("auto", "NPU: loss scaling: auto (dynamic in float16 modes, none otherwise), "
                                  "dynamic, none, or a fixed scale such as 1024.")


@dataclass(frozen=True)
class DistributionConfig:
    """Which device backend, how many devices and processes, and how they talk."""

    backend: str = setting("auto", "Device backend: cpu, gpu, npu, or auto (npu if its adapter loads, else gpu if "
                           "one is visible, else cpu).")
    rank_size: int = setting(1, "Number of devices that train together (the command line, the machine or the "
                             "launcher sets it; flag files do not).", minimum=1)
    group_size: int = setting(1, "Number of servers (hosts) the devices are spread over.", minimum=1)
    multi_worker: Optional[bool] = setting(None, "Train --rank_size replicas as that many local worker processes "
                                           "(default: on for cpu, off for gpu, which mirrors the GPUs in one "
                                           "process).")
    worker_hosts: Tuple[str, ...] = setting((), "Join a multi-host cluster: host:port of every worker, in rank "
                                            "order, the same list on every host (or set TF_CONFIG instead).")
    task_index: Optional[int] = setting(None, "With --worker_hosts: this process's index in that list (its rank).",
                                        minimum=0)
    cpus_per_rank: int = setting(0, "Launcher: pin each local worker process to this many CPU cores (0: no "
                                 "pinning).", minimum=0)
    collective_timeout_s: float = setting(0.0, "Multi-worker: seconds a collective may wait for its peers before "
                                          "the step fails (0: no limit; the launcher notices a dead rank).",
                                          minimum=0.0)
    all_reduce_pack_mb: float = setting(32.0, "Multi-worker: gradients are all-reduced in packs of about this many "
                                        "MB (0: one pack).", minimum=0.0)
    intra_op_threads: int = setting(0, "cpu: threads inside one op (0: TensorFlow's choice).", minimum=0)
    inter_op_threads: int = setting(0, "cpu: ops run concurrently (0: TensorFlow's choice).", minimum=0)
    preempt_grace_s: float = setting(300.0, "Launcher: seconds the ranks get to save and exit after a preemption "
                                     "signal before they are killed.", minimum=0.0)


@dataclass(frozen=True)
class NPUConfig:
    """Options of the Ascend adapter and the NPU job."""

    npu_hcom_parallel: bool = setting(True, "NPU: overlap gradient all-reduce with back-propagation.")
    npu_op_compiler_cache_mode: Optional[str] = setting(None, "NPU: cache of compiled operators (default: the "
                                                        "adapter's).", choices=("enable", "disable", "force"))
    npu_op_compiler_cache_dir: Optional[str] = setting(None, "NPU: directory of the operator compile cache.")
    npu_deterministic: bool = setting(False, "NPU: deterministic kernels (CANN 6.3.RC1 or newer).")
    npu_graph_memory_max_size: Optional[int] = setting(None, "NPU: bytes of device memory for graphs.", minimum=1)
    npu_variable_memory_max_size: Optional[int] = setting(None, "NPU: bytes of device memory for variables.",
                                                          minimum=1)
    npu_option: Tuple[str, ...] = setting((), "NPU: any other global option of the adapter, KEY=VALUE (repeatable; "
                                          "nested keys with dots, merged into their group).", check=_key_values)
    npu_device_ids: Optional[Tuple[str, ...]] = setting(None, "NPU: devices of this server to use, in rank order, "
                                                        "as logical ids.")
    npu_device_ips: Optional[Tuple[str, ...]] = setting(None, "NPU: interconnect addresses of --npu_device_ids, to "
                                                        "generate the rank table without --hccn_conf.")
    rank_table_file: Optional[str] = setting(None, "NPU: the HCCL rank table (default: one generated for this "
                                             "server).")
    hccn_conf: str = setting("/etc/hccn.conf", "NPU: the driver's file of device addresses.")
    server_id: Optional[str] = setting(None, "NPU: this server's id in the rank table.")
    job_id: str = setting("10087", "NPU: JOB_ID given to every rank.")
    bind_cores: bool = setting(False, "NPU: pin each rank to its own slice of this server's CPU cores.")


@dataclass(frozen=True)
class LoopConfig:
    """The training loop: steps per device call and what a non-finite step does."""

    iterations_per_loop: int = setting(100, "Steps per device loop (one tf.function call); a call also ends at "
                                       "each log line and checkpoint.", minimum=1)
    nan_policy: str = setting("stop", "A step whose loss or gradients are not finite is never applied. stop: end "
                              "training; skip_step: drop that update and stop after --max_consecutive_skips.",
                              choices=("stop", "skip_step"))
    max_consecutive_skips: int = setting(5, "--nan_policy=skip_step: non-finite steps in a row that stop "
                                         "training.", minimum=1)


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints and resuming."""

    checkpoint_dir: Optional[str] = setting(None, "Checkpoint directory (default: --log_dir's, shared by ranks).")
    do_checkpoint: bool = setting(True, "Save checkpoints (--nodo_checkpoint to switch off).")
    save_checkpoints_steps: int = setting(1000, "Interval between checkpoints, in steps.", minimum=1)
    max_checkpoint_to_save: int = setting(5, "Newest readable checkpoints to keep.", minimum=1)
    allow_recipe_change: Tuple[str, ...] = setting((), "Resume although these settings differ from the run that "
                                                   "wrote the checkpoint: setting or group names (lr, schedule, "
                                                   "augment, ...) or 'all'; a bare --allow_recipe_change means all.")


@dataclass(frozen=True)
class LoggingConfig:
    """Where the run writes and how often."""

    log_dir: Optional[str] = setting(None, "Where the log, config.json and checkpoints go (default: "
                                     "results/<N>p/<rank>).")
    log_name: Optional[str] = setting(None, "Name of the log file (default: <model>_training.log).")
    save_summary_steps: int = setting(100, "Logging interval in steps.", minimum=1)


@dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation of checkpoints."""

    eval_batch_size: Optional[int] = setting(None, "Validation batch per device (default: --batch_size).",
                                             minimum=1)
    epochs_between_evals: float = setting(5.0, "train_and_evaluate: epochs between evaluations.", minimum=0.0)
    checkpoint_path: Optional[str] = setting(None, "evaluate/predict/export: this checkpoint (DIR/model.ckpt-N) "
                                             "instead of those in --checkpoint_dir.")


@dataclass(frozen=True)
class PredictConfig:
    """Predictions for image files."""

    image: Tuple[str, ...] = setting((), "predict: image files, folders (searched recursively) or list files "
                                     "(one path per line), comma-separated.")
    label_map: Optional[str] = setting(None, "predict/export: label map file (<label><TAB><name> lines); default: "
                                       "the run's.")
    top_k: int = setting(5, "predict/export: classes reported per image.", minimum=1)
    predictions_csv: Optional[str] = setting(None, "predict: CSV file of the predictions, one row per image "
                                             "(default: predictions.csv beside the checkpoint, in the run's "
                                             "directory).")


@dataclass(frozen=True)
class ExportConfig:
    """What ``--mode=export`` writes."""

    export_dir: Optional[str] = setting(None, "export: directory to write (must not exist or be empty unless "
                                        "--overwrite).")
    export_formats: Tuple[str, ...] = setting(("saved_model",), "export: formats to write: saved_model, tflite, "
                                              "tflite_dynamic, tflite_int8, onnx, keras.",
                                              choices=("saved_model", "tflite", "tflite_dynamic", "tflite_int8",
                                                       "onnx", "keras"))
    overwrite: bool = setting(False, "export: replace the contents of a non-empty --export_dir.")
    calibration_images: int = setting(200, "export tflite_int8: training images (the run's train split, evaluation "
                                      "transform) that calibrate the integer ranges.", minimum=1)
    check_images: int = setting(200, "export: held-out images (the run's validation split) on which every format "
                                "is compared with the float32 model (0: random inputs).", minimum=0)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is: the mode, the seed and one sub-configuration per concern."""

    mode: str = setting("train", "What to run: train; evaluate every checkpoint; train_and_evaluate; predict "
                        "--image; export (docs/evaluation.md).", choices=MODES)
    seed: Optional[int] = setting(None, "Random seed of weights, shuffling and augmentation.")
    model: ModelConfig = field(default_factory=ModelConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    npu: NPUConfig = field(default_factory=NPUConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able values: ``{"mode": ..., "seed": ..., "model": {...}, ...}`` (tuples as lists)."""
        return _plain(dataclasses.asdict(self))


# Group name -> class, in the order --help and the log show them; "run" holds RunConfig's own settings.
GROUPS: Dict[str, type] = {"run": RunConfig}
GROUPS.update({f.name: f.default_factory for f in dataclasses.fields(RunConfig) if "setting" not in f.metadata})


def group_fields(group: str) -> Iterator[dataclasses.Field]:
    """The setting fields of a group (for ``run``, RunConfig's own ``mode`` and ``seed``)."""
    return (f for f in dataclasses.fields(GROUPS[group]) if "setting" in f.metadata)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
