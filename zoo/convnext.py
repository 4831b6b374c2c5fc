"""ConvNeXt: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/convnext.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from typing import Dict

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's references/classification/README.md, "ConvNeXt" (8 GPUs x 128 = global batch 1024):
#   --batch-size 128 --opt adamw --lr 1e-3 --lr-scheduler cosineannealinglr --lr-warmup-epochs 5
#   --lr-warmup-method linear --auto-augment ta_wide --epochs 600 --random-erase 0.1 --label-smoothing 0.1
#   --mixup-alpha 0.2 --cutmix-alpha 1.0 --weight-decay 0.05 --norm-weight-decay 0.0 --train-crop-size 176
#   --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4
# All of it except the repeated-augmentation sampler (not supported) and the 176-pixel training crop (one
# input size per model: training and evaluation both use 224); configs/convnext_tiny_imagenet.flags says so.
# The warm-up starts at train.py's default --lr-warmup-decay 0.01. --model-ema is the flag file's only (see
# tests/test_configs.py: the average changes what evaluate and export serve, so a run opts in).
# --val-resize-size 232 is the flag file's --val_resize_size; the registered eval_resize stays 236, the
# resize of the weights' published evaluation.
_HPARAMS: Dict[str, object] = dict(
    optimizer="adamw", optimizer_epsilon=1e-8, adam_beta1=0.9, adam_beta2=0.999, lr=1e-3, batch_size=128,
    max_epochs=600, warmup_epochs=5, lr_warmup_method="linear", lr_warmup_decay=0.01, lr_decay_after_warmup=True,
    lr_schedule="cosine", lr_min=0.0, lr_schedule_unit="epoch", weight_decay=0.05, norm_weight_decay=0.0,
    label_smoothing=0.1, auto_augment="ta_wide", random_erase=0.1, mixup_alpha=0.2, cutmix_alpha=1.0,
    stochastic_depth_rate=0.1,  # the builder's default, torchvision's stochastic_depth_prob
)

MODELS.register_lazy(
    "convnext_tiny", "zoo.nets.convnext:convnext_tiny",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/convnext_tiny-983f1562.pth",
        lr_reference_batch=1024, input_size=224, eval_resize=236, interpolation="bilinear", min_input_size=32,
        reference_top1=82.520, reference_top5=96.146, classifier=("classifier.2",),
        hparams=_HPARAMS),
    torchvision=TorchvisionSource("convnext_tiny"),
    params=28_589_128,
    description="ConvNeXt-T (96-192-384-768 channels, 3-3-9-3 blocks, layer scale 1e-6), torchvision's layout.",
)
