"""AlexNet (torchvision's and the Ascend ModelZoo recipe's): the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/alexnet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# The Ascend ModelZoo recipe (AlexNet_ID0072_for_TensorFlow, its README and train.py), for its own network:
# 8 NPUs x 128 images, Nesterov momentum 0.9, lr 0.06 for the global batch of 1024 with a 5-epoch linear
# warm-up and cosine annealing per epoch over 150 epochs, weight decay 1e-4 on every variable, label
# smoothing 0.1; RandomResizeCrop(0.08..1, 3/4..4/3) + flip, evaluation: 256x256 resize (not the shorter
# side), central 224 crop. 60.12% top-1 / 82.06% top-5 on ImageNet-1k (its README's table).
_ASCEND = dict(
    batch_size=128, lr=0.06, max_epochs=150, warmup_epochs=5, momentum=0.9, use_nesterov=True,
    weight_decay=1e-4, label_smoothing=0.1, optimizer="momentum", lr_schedule="cosine", eval_resize="square",
)
# torchvision's reference recipe for its AlexNet weights (references/classification/README.md, "AlexNet and
# VGG": torchrun --nproc_per_node=8 train.py --model alexnet --lr 1e-2): 8 GPUs x 32 images, SGD momentum 0.9
# (no Nesterov), weight decay 1e-4, no label smoothing, no warm-up, 90 epochs with the lr divided by 10
# every 30; RandomResizedCrop 224 + flip, evaluation: bilinear resize of the shorter side to 256, crop 224.
_TORCHVISION_RECIPE = dict(
    batch_size=32, lr=0.01, max_epochs=90, warmup_epochs=0, momentum=0.9, use_nesterov=False,
    weight_decay=1e-4, label_smoothing=0.0, optimizer="momentum", lr_schedule="piecewise",
    lr_decay_boundaries=(30, 60), lr_decay_factor=0.1,
)
# AlexNet accepts inputs from 63x63 (adaptive 6x6 pooling, as torchvision).
_COMMON = dict(min_input_size=63, classifier=("logits",))
# Our layer names -> torchvision's module paths (features.N convolutions, classifier.N linear layers).
_TORCHVISION = TorchvisionSource("alexnet", layer_names={
    "conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
    "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "logits": "classifier.6",
})

MODELS.register_lazy(
    "alexnet", "zoo.nets.alexnet:alexnet",
    aliases=("alexnet_torchvision",),
    recipe=ModelRecipe(reference_top1=56.522, reference_top5=79.066, hparams=_TORCHVISION_RECIPE,
                       weights_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                       lr_reference_batch=256, reference_weights="AlexNet_Weights.IMAGENET1K_V1",
                       reference="torchvision's AlexNet_Weights.IMAGENET1K_V1, trained with the AlexNet and VGG "
                       "command of references/classification/README.md (torchrun --nproc_per_node=8 train.py --model "
                       "alexnet --lr 1e-2)", **_COMMON),
    torchvision=_TORCHVISION,
    params=61_100_840,
    initializers=("he_uniform", "xavier", "torchvision"),
    description="torchvision's AlexNet (64-192-384-256-256, dropout 0.5).",
)

MODELS.register_lazy(
    "alexnet_modelzoo", "zoo.nets.alexnet:alexnet_modelzoo",
    recipe=ModelRecipe(reference_top1=60.12, reference_top5=82.06, hparams=_ASCEND, lr_reference_batch=1024,
                       reference_weights="the Ascend README's 8-NPU run",
                       reference="the Ascend ModelZoo AlexNet_ID0072_for_TensorFlow recipe (its README, train.py and "
                       "scripts/train_alexnet_8p.sh: 8 NPUs x 128 images, 150 epochs)",
                       **_COMMON),
    params=61_266_088,
    initializers=("he_uniform", "xavier", "torchvision"),
    description="The Ascend ModelZoo recipe's AlexNet (96 first-layer filters, dropout 0.35), "
    "with linear logits.",
)
