"""The facts that travel with each registered model: its default recipe and its torchvision source.

A model's input conventions (size, resize, interpolation, normalisation, channel order) and its
reference training settings live here, registered with the model, so that preprocessing and
hyper-parameters cannot drift apart from the network (slim kept them in separate maps, and they
drifted). ``IMAGENET_MEAN`` / ``IMAGENET_STD`` are the one place the default normalisation is
written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "CHANNEL_ORDERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "ModelRecipe",
    "TorchvisionSource",
]

# RGB on a 0..1 scale, the ImageNet statistics torchvision's weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic")
CHANNEL_ORDERS = ("rgb", "bgr")


@dataclass(frozen=True)
class ModelRecipe:
    """Input conventions and reference hyper-parameters of a model.

    Attributes:
        input_size: the size the network is built for, in pixels (square): the evaluation crop of the reference
            weights, and the training crop unless ``hparams`` sets ``train_crop_size`` (FixRes: torchvision's
            newer recipes train at 176 and evaluate at 224).
        min_input_size: smallest input the network accepts; enforced when the model is built.
        size_multiple: input sizes must be multiples of this (ViT's patch size: torchvision's network
            refuses other sizes); enforced when the model is built.
        size_agnostic: the trained weights fit any input size (convolutional networks), so evaluation may build
            the model at another size than training did (``--val_crop_size``, FixRes); False for ViT, whose
            position embedding has one entry per patch of the training size.
        eval_resize: resize before the central crop at evaluation.
        interpolation: resize filter of the reference preprocessing, ``bilinear`` or ``bicubic``.
        mean: per-channel mean in ``channel_order``, on the scale ``value_scale`` (0..1 by default).
        std: per-channel standard deviation, same order and scale as ``mean``.
        channel_order: ``rgb``, or ``bgr`` for caffe-style networks.
        value_scale: the maximum pixel value the statistics refer to: 1.0 (torchvision), or 255.0
            for caffe-style models whose mean is given in 0..255 pixels.
        num_classes: classes of the reference training set.
        reference_top1: published top-1 accuracy (percent) of the reference weights, if any.
        reference_top5: published top-5 accuracy (percent), if any.
        reference: where the reference accuracy and training settings come from: the weights and the
            recipe that trained them (e.g. torchvision's ``ResNet50_Weights.IMAGENET1K_V1`` and its
            references/classification command). ``tests/test_recipes.py`` compares ``hparams`` with it.
        reference_weights: the published weights (or run) that ``reference_top1`` / ``reference_top5`` belong to,
            short: ``ResNet50_Weights.IMAGENET1K_V1`` (torchvision's), or the Ascend README's 8-NPU run.
        weights_url: where the reference weights are published (torchvision's ``IMAGENET1K_V1`` file, its
            SHA-256 prefix in the name), for ``--pretrained=torchvision``; None: none published.
        hparams: the reference recipe's training settings, flag name -> value. They become the
            defaults of the flags the user did not set (``training.recipe_flags``).
        lr_reference_batch: the global batch (per-device batch x devices) the recipe's ``lr`` is for.
            When ``--lr`` is not set, the rate is scaled linearly to the run's global batch (the Ascend
            recipe's own rule: 0.06 for 1024 images, 0.015 for 256).
        classifier: fnmatch patterns of the classifier layers' names: what ``--restore_exclude``
            leaves out by default when fine-tuning on other classes.
        embedding_variables: fnmatch patterns of variable paths that are embeddings (class token,
            position embedding): ``--embedding_weight_decay`` applies to them.
        aux_loss_weights: weight of each auxiliary head's loss in training, in the order of the
            model's extra outputs (inception_v3: ``(0.4,)``); evaluation uses the first output only.
        fp32_faster_on: kinds of backend (``cpu``, ``gpu``) on which this model was measured to train faster in
            float32 than in the mixed precision ``--precision=auto`` would otherwise pick there, so that ``auto``
            picks fp32 for it (the measurements: bench/RESULTS.md).
    """

    input_size: int = 224
    min_input_size: int = 32
    size_multiple: int = 1
    size_agnostic: bool = True
    eval_resize: int = 256
    interpolation: str = "bilinear"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "rgb"
    value_scale: float = 1.0
    num_classes: int = 1000
    reference_top1: Optional[float] = None
    reference_top5: Optional[float] = None
    reference: str = ""
    reference_weights: str = ""
    weights_url: Optional[str] = None
    hparams: Dict[str, Any] = field(default_factory=dict)
    lr_reference_batch: Optional[int] = None
    classifier: Tuple[str, ...] = ("logits",)
    embedding_variables: Tuple[str, ...] = ()
    aux_loss_weights: Tuple[float, ...] = ()
    fp32_faster_on: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.eval_resize < self.input_size:
            raise ValueError(f"eval_resize ({self.eval_resize}) must be at least input_size ({self.input_size})")

    def scaled(self, image_size: Optional[int]) -> ModelRecipe:
        """The recipe at another input size, with the eval resize scaled by the same factor."""
        if not image_size or image_size == self.input_size:
            return self
        resize = int(round(self.eval_resize * image_size / self.input_size))
        return replace(self, input_size=image_size, eval_resize=max(resize, image_size))

    def check_input_size(self, image_size: int, model: str = "this model") -> None:
        """Raises ValueError if ``image_size`` is below ``min_input_size`` or not a multiple of
        ``size_multiple``, naming the flag."""
        if image_size < self.min_input_size:
            raise ValueError(
                f"{model} needs inputs of at least {self.min_input_size}x{self.min_input_size} pixels, "
                f"got --image_size={image_size}; raise --image_size."
            )
        if image_size % self.size_multiple:
            raise ValueError(
                f"{model} needs an input size that is a multiple of {self.size_multiple}, "
                f"got --image_size={image_size}; use --image_size={image_size - image_size % self.size_multiple}."
            )

    def check_eval_size(self, train_size: int, eval_size: int, model: str = "this model") -> None:
        """Raises ValueError (one line, naming the flags) if the model cannot be evaluated at ``eval_size`` with
        weights trained at ``train_size``: its weights fit one size (``size_agnostic`` False) and the sizes differ.
        """
        if eval_size != train_size and not self.size_agnostic:
            raise ValueError(
                f"{model} evaluates at the size it trained at (its weights fit one input size), but "
                f"--val_crop_size={eval_size} differs from the training crop {train_size} (--image_size / "
                f"--train_crop_size); leave --val_crop_size out or make them equal."
            )

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TorchvisionSource:
    """Where a zoo model's reference lives in torchvision, for weight conversion and parity tests.

    Attributes:
        builder: torchvision's model name (``torchvision.models.get_model``).
        kwargs: extra builder arguments (e.g. ``aux_logits=True``).
        layer_names: our layer name -> torchvision module path, for layers named differently.
            Layers not listed are named exactly as torchvision's modules (``layer1.0.conv1``).
        size_kwarg: the torchvision builder's argument for the input size, for networks whose
            weights depend on it (ViT's ``image_size``: the position embedding).
    """

    builder: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    layer_names: Mapping[str, str] = field(default_factory=dict)
    size_kwarg: Optional[str] = None

    def torch_name(self, layer_name: str) -> str:
        """The torchvision module path of our layer ``layer_name``."""
        return self.layer_names.get(layer_name, layer_name)
