"""AlexNet (torchvision's and the Ascend ModelZoo recipe's): the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/alexnet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# The recipe's 8-device hyper-parameters (reference-recipe.md section 1).
_RECIPE_8P = dict(
    batch_size=128, lr=0.06, max_epochs=150, warmup_epochs=5, momentum=0.9, use_nesterov=True,
    weight_decay=1e-4, label_smoothing=0.1, optimizer="momentum", lr_schedule="cosine",
)
# AlexNet accepts inputs from 63x63 (adaptive 6x6 pooling, as torchvision).
_RECIPE = dict(min_input_size=63, classifier=("logits",), hparams=_RECIPE_8P, lr_reference_batch=1024)
# Our layer names -> torchvision's module paths (features.N convolutions, classifier.N linear layers).
_TORCHVISION = TorchvisionSource("alexnet", layer_names={
    "conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
    "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "logits": "classifier.6",
})

MODELS.register_lazy(
    "alexnet", "zoo.nets.alexnet:alexnet",
    aliases=("alexnet_torchvision",),
    recipe=ModelRecipe(reference_top1=56.522, reference_top5=79.066, **_RECIPE),
    torchvision=_TORCHVISION,
    params=61_100_840,
    initializers=("he_uniform", "xavier", "torchvision"),
    description="torchvision's AlexNet (64-192-384-256-256, dropout 0.5).",
)

MODELS.register_lazy(
    "alexnet_modelzoo", "zoo.nets.alexnet:alexnet_modelzoo",
    recipe=ModelRecipe(reference_top1=60.12, reference_top5=82.06, **_RECIPE),
    params=61_266_088,
    initializers=("he_uniform", "xavier", "torchvision"),
    description="The Ascend ModelZoo recipe's AlexNet (96 first-layer filters, dropout 0.35), "
    "with linear logits.",
)
