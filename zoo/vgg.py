"""VGG: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/vgg.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's reference recipe (references/classification, "AlexNet and VGG"): 8 GPUs x 32 images,
# SGD momentum 0.9 (no Nesterov), weight decay 1e-4, no label smoothing, no warm-up, 90 epochs with the
# lr divided by 10 every 30. Without batch norm the default lr 0.1 is too high: they used 0.01.
_RECIPE_BN = dict(
    optimizer="momentum", lr=0.1, batch_size=32, max_epochs=90, warmup_epochs=0, lr_schedule="piecewise",
    lr_decay_boundaries=(30, 60), lr_decay_factor=0.1, weight_decay=1e-4, label_smoothing=0.0, momentum=0.9,
    use_nesterov=False, dropout=0.5,
)
_RECIPE = dict(_RECIPE_BN, lr=0.01)
_CLASSIFIER = ("classifier.6",)


def _reference(weights: str, command: str) -> dict:
    """ModelRecipe's reference fields for torchvision's ``<weights>_Weights.IMAGENET1K_V1`` and its command."""
    return dict(reference_weights=f"{weights}_Weights.IMAGENET1K_V1",
                reference=f"torchvision's {weights}_Weights.IMAGENET1K_V1, trained with the AlexNet and VGG command "
                f"of references/classification/README.md ({command})")


# torchvision's weights meta: min_size (32, 32); transforms: crop 224 after a bilinear resize to 256.
_COMMON = dict(input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=32, classifier=_CLASSIFIER,
               lr_reference_batch=256)  # torchvision's commands: 8 GPUs x 32 images

MODELS.register_lazy(
    "vgg11", "zoo.nets.vgg:vgg11",
    recipe=ModelRecipe(**_reference("VGG11", "torchrun --nproc_per_node=8 train.py --model vgg11 --lr 1e-2"),
                       reference_top1=69.020, reference_top5=88.628, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/vgg11-8a719046.pth"),
    torchvision=TorchvisionSource("vgg11"),
    params=132_863_336,
    description="VGG-11 (configuration A), torchvision's layout, no batch norm.",
)

MODELS.register_lazy(
    "vgg16", "zoo.nets.vgg:vgg16",
    recipe=ModelRecipe(**_reference("VGG16", "torchrun --nproc_per_node=8 train.py --model vgg16 --lr 1e-2"),
                       reference_top1=71.592, reference_top5=90.382, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/vgg16-397923af.pth"),
    torchvision=TorchvisionSource("vgg16"),
    params=138_357_544,
    description="VGG-16 (configuration D), torchvision's layout, no batch norm.",
)

MODELS.register_lazy(
    "vgg19", "zoo.nets.vgg:vgg19",
    recipe=ModelRecipe(**_reference("VGG19", "torchrun --nproc_per_node=8 train.py --model vgg19 --lr 1e-2"),
                       reference_top1=72.376, reference_top5=90.876, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    torchvision=TorchvisionSource("vgg19"),
    params=143_667_240,
    description="VGG-19 (configuration E), torchvision's layout, no batch norm.",
)

MODELS.register_lazy(
    "vgg16_bn", "zoo.nets.vgg:vgg16_bn",
    recipe=ModelRecipe(**_reference("VGG16_BN", "torchrun --nproc_per_node=8 train.py --model vgg16_bn"),
                       reference_top1=73.360, reference_top5=91.516, hparams=_RECIPE_BN, **_COMMON,
                       weights_url="https://download.pytorch.org/models/vgg16_bn-6c64b313.pth"),
    torchvision=TorchvisionSource("vgg16_bn"),
    params=138_365_992,
    description="VGG-16 (configuration D) with batch norm after every convolution, torchvision's layout.",
)
