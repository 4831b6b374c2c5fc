"""Inception v3: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/inception.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# The weights are ported from TensorFlow (references/classification/README.md: "ported from the original
# paper rather than trained from scratch"); torchvision publishes no training command for them. This is the
# paper's recipe (arXiv:1512.00567, section 8) as TensorFlow's Inception training code ran it (tensorflow/models
# research/inception: inception_train.py, image_processing.py, slim's inception_v3_arg_scope): RMSProp with
# decay 0.9 and epsilon 1.0 (TensorFlow 1's RMSPropOptimizer: rmsprop_tf), momentum 0.9 (RMSPROP_MOMENTUM), lr
# 0.045 for 50 replicas x 32 images (global batch 1600: 8 devices x 200 here) x 0.94 every 2 epochs, label
# smoothing 0.1, 100 epochs, gradient clipping at 2.0 (the global norm), weight decay 4e-5 on conv/fc kernels
# only, dropout 0.2 (keep 0.8; the builder's default stays torchvision's 0.5), auxiliary loss weight 0.4 (the
# registration's aux_loss_weights); training crops of 5%..100% of the image; the weights' moving average,
# ExponentialMovingAverage(0.9999, num_updates=global_step) applied every step, which evaluation uses
# (--nomodel_ema_adjust --model_ema_warmup=num_updates; evaluate and export serve the average).
# That code's crop sampler, sample_distorted_bounding_box steered by the ImageNet boxes (min_object_covered 0.1)
# = --crop_sampler=distorted_bbox; its colour distortion (brightness 32/255, saturation and contrast 0.5..1.5, hue
# 0.2) = --distort_color=full. Approximated (docs/zoo.md, tests/data/reference_recipes.json): the sampler's 100
# tries and aspect 0.75..1.33 (here 10 tries, 3/4..4/3); the colour distortion's two orders, one per
# preprocessing thread (here slim's four, one per image); the resize method per preprocessing thread among
# bilinear, nearest, bicubic and area (here bilinear or bicubic per image: --train_interpolation=random).
_RECIPE = dict(
    optimizer="rmsprop_tf", rmsprop_decay=0.9, momentum=0.9, optimizer_epsilon=1.0, lr=0.045, batch_size=200,
    max_epochs=100, warmup_epochs=0, lr_schedule="exponential", lr_decay_epochs=2, lr_decay_factor=0.94,
    lr_schedule_unit="epoch", weight_decay=4e-5, norm_weight_decay=0.0, bias_weight_decay=0.0,
    label_smoothing=0.1, dropout=0.2, clip_grad_norm=2.0, min_crop_area=0.05, crop_sampler="distorted_bbox",
    distort_color="full", train_interpolation="random",
    model_ema=True, model_ema_steps=1, model_ema_decay=0.9999, model_ema_adjust=False, model_ema_warmup="num_updates",
)

MODELS.register_lazy(
    "inception_v3", "zoo.nets.inception:inception_v3",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        lr_reference_batch=1600,
        input_size=299, eval_resize=342, interpolation="bilinear", min_input_size=75,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), reference_top1=77.294, reference_top5=93.450,
        classifier=("fc", "AuxLogits.fc"), aux_loss_weights=(0.4,), hparams=_RECIPE,
        reference_weights="Inception_V3_Weights.IMAGENET1K_V1",
        reference="torchvision's Inception_V3_Weights.IMAGENET1K_V1 (ported from TensorFlow's Inception v3 "
        "checkpoint); its recipe: the paper (arXiv:1512.00567, section 8) as tensorflow/models research/inception "
        "ran it (inception_train.py, image_processing.py)",
    ),
    torchvision=TorchvisionSource(
        "inception_v3", kwargs={"aux_logits": True, "init_weights": False, "transform_input": False}),
    params=27_161_264,
    description="Inception v3 with its auxiliary head (outputs [logits, aux_logits]), torchvision's layout; "
    "inputs normalised with mean = std = 0.5.",
)
