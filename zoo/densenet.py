"""DenseNet: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/densenet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's weights were ported from the authors' LuaTorch models (weights meta: pytorch/vision#116), so the
# recipe is the paper's (section 4.2) as the authors ran it (liuzhuang13/DenseNet on fb.resnet.torch: -batchSize
# 256 -nEpochs 90 -nGPU 4): SGD with Nesterov momentum 0.9 (no dampening), lr 0.1 for the batch of 256, divided
# by 10 at epochs 30 and 60, weight decay 1e-4 on every parameter, no label smoothing; RandomSizedCrop 224 and
# flips, fb.resnet.torch's ColorJitter (brightness, contrast, saturation 0.4, in a random order) and AlexNet's PCA
# lighting noise (std 0.1 on ImageNet's eigenvectors). Approximated (docs/zoo.md, tests/data/reference_recipes.json):
# RandomSizedCrop's fallback after 10 failed tries (a Scale and CenterCrop of the whole image; here torchvision's
# central crop clamped to the ratio range).
_RECIPE = dict(
    optimizer="momentum", momentum=0.9, use_nesterov=True, lr=0.1, batch_size=64, max_epochs=90,
    warmup_epochs=0, lr_schedule="piecewise", lr_decay_boundaries=[30, 60], lr_decay_factor=0.1,
    weight_decay=1e-4, label_smoothing=0.0, color_jitter=(0.4, 0.4, 0.4, 0.0), lighting_std=0.1,
)

MODELS.register_lazy(
    "densenet121", "zoo.nets.densenet:densenet121",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/densenet121-a639ec97.pth",
        lr_reference_batch=256, input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=29,
        reference_top1=74.434, reference_top5=91.972, classifier=("classifier",), hparams=_RECIPE,
        reference_weights="DenseNet121_Weights.IMAGENET1K_V1",
        reference="torchvision's DenseNet121_Weights.IMAGENET1K_V1 (ported from the authors' LuaTorch model); its "
        "recipe: the paper's section 4.2 as liuzhuang13/DenseNet ran it on fb.resnet.torch (th main.lua -netType "
        "densenet -depth 121 -batchSize 256 -nEpochs 90 -nGPU 4)"),
    torchvision=TorchvisionSource("densenet121"),
    params=7_978_856,
    description="DenseNet-121 (DenseNet-BC, growth rate 32, blocks 6-12-24-16), torchvision's layout.",
)
