"""ResNet, ResNeXt and Wide ResNet: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/resnet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

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
# wide_resnet50_2: its IMAGENET1K_V1 weights come from pytorch/vision#912 (their meta's recipe), whose author lists
# how he departed from "the standard training procedure for ResNet": "SGD with cosine learning rate and warm
# restarts for 256 epochs" and fp16 (apex O2; --precision here). Everything else is that procedure, the ResNet
# command above (8 GPUs x 32, lr 0.1, momentum 0.9, weight decay 1e-4). The PR publishes no cycle length:
# T_0 = 64 epochs with T_mult 1 (four cosine cycles from lr 0.1 to 0 that end with the run) is this zoo's choice,
# not the reference's (docs/zoo.md, tests/data/reference_recipes.json).
_RECIPE_WIDE = dict({k: v for k, v in _RECIPE.items() if not k.startswith("lr_decay")}, max_epochs=256,
                    lr_schedule="cosine_restarts", lr_restart_epochs=64.0, lr_restart_mult=1.0, lr_min=0.0)


def _reference(weights: str, model: str) -> dict:
    """ModelRecipe's reference fields for torchvision's ``<weights>_Weights.IMAGENET1K_V1`` (the ResNet command)."""
    return dict(reference_weights=f"{weights}_Weights.IMAGENET1K_V1",
                reference=f"torchvision's {weights}_Weights.IMAGENET1K_V1, trained with the ResNet command of "
                f"references/classification/README.md (torchrun --nproc_per_node=8 train.py --model {model})")


# torchvision's weights meta: min_size (1, 1); transforms: bilinear resize to 256, central crop 224.
# torchvision's commands: 8 GPUs x 32 images.
_COMMON = dict(input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=1, classifier=("fc",),
               lr_reference_batch=256)

MODELS.register_lazy(
    "resnet18", "zoo.nets.resnet:resnet18",
    recipe=ModelRecipe(**_reference("ResNet18", "resnet18"),
                       reference_top1=69.758, reference_top5=89.078, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    torchvision=TorchvisionSource("resnet18"),
    params=11_689_512,
    description="ResNet-18 (BasicBlock, 2-2-2-2), torchvision's layout.",
)

MODELS.register_lazy(
    "resnet34", "zoo.nets.resnet:resnet34",
    recipe=ModelRecipe(**_reference("ResNet34", "resnet34"),
                       reference_top1=73.314, reference_top5=91.420, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnet34-b627a593.pth"),
    torchvision=TorchvisionSource("resnet34"),
    params=21_797_672,
    description="ResNet-34 (BasicBlock, 3-4-6-3), torchvision's layout.",
)

MODELS.register_lazy(
    "resnet50", "zoo.nets.resnet:resnet50",
    recipe=ModelRecipe(**_reference("ResNet50", "resnet50"),
                       reference_top1=76.130, reference_top5=92.862, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnet50-0676ba61.pth"),
    torchvision=TorchvisionSource("resnet50"),
    params=25_557_032,
    description="ResNet-50 v1.5 (stride on the 3x3), torchvision's layout.",
)

MODELS.register_lazy(
    "resnet101", "zoo.nets.resnet:resnet101",
    recipe=ModelRecipe(**_reference("ResNet101", "resnet101"),
                       reference_top1=77.374, reference_top5=93.546, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnet101-63fe2227.pth"),
    torchvision=TorchvisionSource("resnet101"),
    params=44_549_160,
    description="ResNet-101 v1.5 (stride on the 3x3), torchvision's layout.",
)

MODELS.register_lazy(
    "resnet152", "zoo.nets.resnet:resnet152",
    recipe=ModelRecipe(**_reference("ResNet152", "resnet152"),
                       reference_top1=78.312, reference_top5=94.046, hparams=_RECIPE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnet152-394f9c45.pth"),
    torchvision=TorchvisionSource("resnet152"),
    params=60_192_808,
    description="ResNet-152 v1.5 (stride on the 3x3), torchvision's layout.",
)

MODELS.register_lazy(
    "resnext50_32x4d", "zoo.nets.resnet:resnext50_32x4d",
    recipe=ModelRecipe(reference_weights="ResNeXt50_32X4D_Weights.IMAGENET1K_V1",
                       reference="torchvision's ResNeXt50_32X4D_Weights.IMAGENET1K_V1, trained with the ResNext "
                       "command of references/classification/README.md (torchrun --nproc_per_node=8 train.py --model "
                       "resnext50_32x4d --epochs 100; the weights: 64 GPUs x 16 with lr 0.4, the same rate per image)",
                       reference_top1=77.618, reference_top5=93.698, hparams=_RECIPE_RESNEXT, **_COMMON,
                       weights_url="https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth"),
    torchvision=TorchvisionSource("resnext50_32x4d"),
    params=25_028_904,
    description="ResNeXt-50 32x4d (grouped 3x3, 32 groups of 4 channels at the first stage), torchvision's layout.",
)

MODELS.register_lazy(
    "wide_resnet50_2", "zoo.nets.resnet:wide_resnet50_2",
    recipe=ModelRecipe(reference_weights="Wide_ResNet50_2_Weights.IMAGENET1K_V1",
                       reference="torchvision's Wide_ResNet50_2_Weights.IMAGENET1K_V1, trained as pytorch/vision#912 "
                       "says: the ResNet command of references/classification/README.md with SGD, a cosine lr with "
                       "warm restarts, 256 epochs (cycle length unpublished) and fp16",
                       reference_top1=78.468, reference_top5=94.086, hparams=_RECIPE_WIDE, **_COMMON,
                       weights_url="https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth"),
    torchvision=TorchvisionSource("wide_resnet50_2"),
    params=68_883_240,
    description="Wide ResNet-50-2 (ResNet-50 with twice the Bottleneck's inner width), torchvision's layout.",
)
