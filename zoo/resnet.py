"""ResNet (He et al., arXiv:1512.03385), ResNeXt and Wide ResNet: torchvision's networks in NHWC.

torchvision's ResNet is "v1.5": a Bottleneck puts its stride on the 3x3 convolution, not on the first
1x1 as the paper did. ResNeXt (arXiv:1611.05431) is the same Bottleneck with a grouped 3x3 and a wider
inner width; Wide ResNet-50-2 (arXiv:1605.07146) doubles the inner width. Layers are named after
torchvision's modules (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``) so
that ``tools/convert_torchvision.py`` maps its weights with no per-model code.

Every detail follows torchvision: 7x7/2 stem convolution (padding 3), 3x3/2 max pooling (padding 1),
symmetric padding in every strided convolution, batch norm with eps 1e-5 and momentum 0.1, convolutions
initialised with ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, batch norm with ones and
zeros (``zero_init_residual`` zeroes each branch's last batch-norm scale), and the ``fc`` layer with
PyTorch's default ``nn.Linear`` initialisation.
"""

from __future__ import annotations

from typing import Sequence

from keras_compat import keras
from registry import MODELS
from zoo.layers import batch_norm, conv2d, fan_in_uniform, max_pool
from zoo.recipe import ModelRecipe, TorchvisionSource

__all__ = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
]

# torchvision's reference recipe (references/classification/README.md, "ResNet"):
#   torchrun --nproc_per_node=8 train.py --model $MODEL
# i.e. train.py's defaults: 8 GPUs x 32 images, SGD momentum 0.9 (no Nesterov), lr 0.1 for the global batch
# of 256, weight decay 1e-4 on every parameter, StepLR(30, 0.1) over 90 epochs, no warm-up, no label smoothing.
_RECIPE = dict(
    optimizer="momentum", lr=0.1, batch_size=32, max_epochs=90, warmup_epochs=0, lr_schedule="piecewise",
    lr_decay_boundaries=(30, 60), lr_decay_factor=0.1, weight_decay=1e-4, label_smoothing=0.0, momentum=0.9,
    use_nesterov=False,
)
# "ResNext": the same with --epochs 100 (so a third decay at epoch 90). The published weights were trained on
# 64 GPUs x 16 images with lr 0.4; the README's 8 x 32, lr 0.1 command is its linearly scaled equivalent.
_RECIPE_RESNEXT = dict(_RECIPE, max_epochs=100, lr_decay_boundaries=(30, 60, 90))

# wide_resnet50_2: torchvision's ResNet command (see the note at its registration).
_RECIPE_WIDE = dict(_RECIPE)

# torchvision's weights meta: min_size (1, 1); transforms: bilinear resize to 256, central crop 224.
# torchvision's commands: 8 GPUs x 32 images.
_COMMON = dict(input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=1, classifier=("fc",),
               lr_reference_batch=256)


def _basic_block(x, planes: int, stride: int, name: str, zero_init_residual: bool):
    """torchvision's ``BasicBlock``: two 3x3 convolutions, the first one strided."""
    shortcut = x
    out = conv2d(x, planes, 3, strides=stride, padding=1, name=f"{name}.conv1")
    out = batch_norm(out, name=f"{name}.bn1")
    out = keras.layers.ReLU(name=f"{name}.relu1")(out)
    out = conv2d(out, planes, 3, padding=1, name=f"{name}.conv2")
    out = batch_norm(out, name=f"{name}.bn2", zero_init=zero_init_residual)
    return _merge(out, shortcut, planes, stride, name)


def _bottleneck(x, planes: int, stride: int, name: str, zero_init_residual: bool, groups: int, base_width: int):
    """torchvision's ``Bottleneck`` (v1.5): 1x1 reduce, 3x3 (strided, grouped), 1x1 expand by 4."""
    width = int(planes * (base_width / 64.0)) * groups
    shortcut = x
    out = conv2d(x, width, 1, name=f"{name}.conv1")
    out = batch_norm(out, name=f"{name}.bn1")
    out = keras.layers.ReLU(name=f"{name}.relu1")(out)
    out = conv2d(out, width, 3, strides=stride, padding=1, groups=groups, name=f"{name}.conv2")
    out = batch_norm(out, name=f"{name}.bn2")
    out = keras.layers.ReLU(name=f"{name}.relu2")(out)
    out = conv2d(out, planes * 4, 1, name=f"{name}.conv3")
    out = batch_norm(out, name=f"{name}.bn3", zero_init=zero_init_residual)
    return _merge(out, shortcut, planes * 4, stride, name)


def _merge(out, shortcut, channels: int, stride: int, name: str):
    """Adds the shortcut (projected by a strided 1x1 + batch norm where the shape changes), then ReLU."""
    if stride != 1 or shortcut.shape[-1] != channels:
        shortcut = conv2d(shortcut, channels, 1, strides=stride, name=f"{name}.downsample.0")
        shortcut = batch_norm(shortcut, name=f"{name}.downsample.1")
    out = keras.layers.Add(name=f"{name}.add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu")(out)


def _build(*, bottleneck: bool, layers: Sequence[int], num_classes: int, image_size: int,
           zero_init_residual: bool, groups: int = 1, width_per_group: int = 64, name: str) -> keras.Model:
    """torchvision's ``ResNet(block, layers, groups, width_per_group)`` as a flat functional model."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = conv2d(inputs, 64, 7, strides=2, padding=3, name="conv1")
    x = batch_norm(x, name="bn1")
    x = keras.layers.ReLU(name="relu")(x)
    x = max_pool(x, 3, 2, padding=1, name="maxpool")
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            block_name = f"layer{stage}.{index}"
            if bottleneck:
                x = _bottleneck(x, planes, stride, block_name, zero_init_residual, groups, width_per_group)
            else:
                x = _basic_block(x, planes, stride, block_name, zero_init_residual)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)  # AdaptiveAvgPool2d(1) + flatten
    features = x.shape[-1]
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=fan_in_uniform(features), bias_initializer=fan_in_uniform(features),
        name="fc",
    )(x)
    return keras.Model(inputs, logits, name=name)


@MODELS.register(
    "resnet18",
    recipe=ModelRecipe(reference_top1=69.758, reference_top5=89.078, hparams=_RECIPE, **_COMMON),
    torchvision=TorchvisionSource("resnet18"),
    params=11_689_512,
    description="ResNet-18 (BasicBlock, 2-2-2-2), torchvision's layout.",
)
def resnet18(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-18 in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=False, layers=(2, 2, 2, 2), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet18")


@MODELS.register(
    "resnet34",
    recipe=ModelRecipe(reference_top1=73.314, reference_top5=91.420, hparams=_RECIPE, **_COMMON),
    torchvision=TorchvisionSource("resnet34"),
    params=21_797_672,
    description="ResNet-34 (BasicBlock, 3-4-6-3), torchvision's layout.",
)
def resnet34(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-34 in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=False, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet34")


@MODELS.register(
    "resnet50",
    recipe=ModelRecipe(reference_top1=76.130, reference_top5=92.862, hparams=_RECIPE, **_COMMON),
    torchvision=TorchvisionSource("resnet50"),
    params=25_557_032,
    description="ResNet-50 v1.5 (stride on the 3x3), torchvision's layout.",
)
def resnet50(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-50 (v1.5: the Bottleneck's stride is on its 3x3 convolution) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet50")


@MODELS.register(
    "resnet101",
    recipe=ModelRecipe(reference_top1=77.374, reference_top5=93.546, hparams=_RECIPE, **_COMMON),
    torchvision=TorchvisionSource("resnet101"),
    params=44_549_160,
    description="ResNet-101 v1.5 (stride on the 3x3), torchvision's layout.",
)
def resnet101(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-101 (v1.5) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 23, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet101")


@MODELS.register(
    "resnet152",
    recipe=ModelRecipe(reference_top1=78.312, reference_top5=94.046, hparams=_RECIPE, **_COMMON),
    torchvision=TorchvisionSource("resnet152"),
    params=60_192_808,
    description="ResNet-152 v1.5 (stride on the 3x3), torchvision's layout.",
)
def resnet152(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-152 (v1.5) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 8, 36, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet152")


@MODELS.register(
    "resnext50_32x4d",
    recipe=ModelRecipe(reference_top1=77.618, reference_top5=93.698, hparams=_RECIPE_RESNEXT, **_COMMON),
    torchvision=TorchvisionSource("resnext50_32x4d"),
    params=25_028_904,
    description="ResNeXt-50 32x4d (grouped 3x3, 32 groups of 4 channels at the first stage), torchvision's layout.",
)
def resnext50_32x4d(*, num_classes: int = 1000, image_size: int = 224,
                    zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNeXt-50 32x4d in NHWC: ResNet-50 whose 3x3 convolutions have 32 groups.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, groups=32, width_per_group=4, name="resnext50_32x4d")


# The V1 weights are not from the README's recipe: their meta points at vision PR #912, whose author trained with
# SGD, cosine lr with warm restarts, 256 epochs and fp16 (lr and batch unpublished). Warm restarts are not in the
# shared stack, so the default recipe is torchvision's ResNet command (configs/wide_resnet50_2_imagenet.flags).
@MODELS.register(
    "wide_resnet50_2",
    recipe=ModelRecipe(reference_top1=78.468, reference_top5=94.086, hparams=_RECIPE_WIDE, **_COMMON),
    torchvision=TorchvisionSource("wide_resnet50_2"),
    params=68_883_240,
    description="Wide ResNet-50-2 (ResNet-50 with twice the Bottleneck's inner width), torchvision's layout.",
)
def wide_resnet50_2(*, num_classes: int = 1000, image_size: int = 224,
                    zero_init_residual: bool = False) -> keras.Model:
    """torchvision's Wide ResNet-50-2 in NHWC: ResNet-50 with twice the inner width of each Bottleneck.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, width_per_group=128, name="wide_resnet50_2")
