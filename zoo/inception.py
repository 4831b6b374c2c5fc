"""Inception v3: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/inception.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# The weights are ported from TensorFlow (references/classification/README.md: "ported from the original
# paper rather than trained from scratch"); torchvision publishes no training command for them. This is the
# paper's recipe (section 8): RMSProp with decay 0.9 and epsilon 1.0, lr 0.045 decayed x0.94 every 2 epochs,
# label smoothing 0.1, 100 epochs, 50 replicas x 32 images (global batch 1600: 8 devices x 200 here).
# Momentum 0.9 and weight decay 4e-5 on conv/fc kernels only are TensorFlow's Inception training code's
# (RMSPROP_MOMENTUM, inception_v3_arg_scope): the paper gives neither. TensorFlow 1's RMSPropOptimizer is
# rmsprop_tf; the paper's gradient clipping at 2.0 is --clip_grad_norm; that code's moving average of the
# weights is the flag file's --model_ema only (see tests/test_configs.py: the average changes what evaluate
# and export serve, so a run opts in); its crops cover 5%..100% of the image. That code's dropout 0.2
# is the recipe's (--dropout); the builder's default stays torchvision's 0.5.
_RECIPE = dict(
    optimizer="rmsprop_tf", rmsprop_decay=0.9, momentum=0.9, optimizer_epsilon=1.0, lr=0.045, batch_size=200,
    max_epochs=100, warmup_epochs=0, lr_schedule="exponential", lr_decay_epochs=2, lr_decay_factor=0.94,
    lr_schedule_unit="epoch", weight_decay=4e-5, norm_weight_decay=0.0, bias_weight_decay=0.0,
    label_smoothing=0.1, dropout=0.2, clip_grad_norm=2.0, min_crop_area=0.05,
)

MODELS.register_lazy(
    "inception_v3", "zoo.nets.inception:inception_v3",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        lr_reference_batch=1600,
        input_size=299, eval_resize=342, interpolation="bilinear", min_input_size=75,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), reference_top1=77.294, reference_top5=93.450,
        classifier=("fc", "AuxLogits.fc"), aux_loss_weights=(0.4,), hparams=_RECIPE,
    ),
    torchvision=TorchvisionSource(
        "inception_v3", kwargs={"aux_logits": True, "init_weights": False, "transform_input": False}),
    params=27_161_264,
    description="Inception v3 with its auxiliary head (outputs [logits, aux_logits]), torchvision's layout; "
    "inputs normalised with mean = std = 0.5.",
)
