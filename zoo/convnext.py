"""ConvNeXt: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/convnext.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from typing import Dict

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's references/classification/README.md, "ConvNeXt" (8 GPUs x 128 = global batch 1024; the published
# weights: 2 nodes x 8 GPUs x 64, the same global batch):
#   --batch-size 128 --opt adamw --lr 1e-3 --lr-scheduler cosineannealinglr --lr-warmup-epochs 5
#   --lr-warmup-method linear --auto-augment ta_wide --epochs 600 --random-erase 0.1 --label-smoothing 0.1
#   --mixup-alpha 0.2 --cutmix-alpha 1.0 --weight-decay 0.05 --norm-weight-decay 0.0 --train-crop-size 176
#   --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4
# with train.py's defaults for the rest: --lr-warmup-decay 0.01, --lr-min 0, --model-ema-steps 32,
# --model-ema-decay 0.99998 (adjusted to the run as train.py does), --val-crop-size 224, bilinear.
# All of it: FixRes (training crop 176, evaluation at 224 after a 232 resize: the evaluation model is built at
# 224 with the trained weights), the weight average (evaluate and export serve it), the repeated-augmentation
# sampler (datasets/repeated.py). The registered eval_resize stays 236, the resize torchvision's weights
# entry publishes for IMAGENET1K_V1 (a post-training optimisation, the README says); the recipe's own runs
# evaluate at the command's 232. --amp is not a recipe setting (--precision chooses).
_HPARAMS: Dict[str, object] = dict(
    optimizer="adamw", optimizer_epsilon=1e-8, adam_beta1=0.9, adam_beta2=0.999, lr=1e-3, batch_size=128,
    max_epochs=600, warmup_epochs=5, lr_warmup_method="linear", lr_warmup_decay=0.01, lr_decay_after_warmup=True,
    lr_schedule="cosine", lr_min=0.0, lr_schedule_unit="epoch", weight_decay=0.05, norm_weight_decay=0.0,
    label_smoothing=0.1, auto_augment="ta_wide", random_erase=0.1, mixup_alpha=0.2, cutmix_alpha=1.0,
    train_crop_size=176, val_crop_size=224, val_resize_size=232, model_ema=True, model_ema_steps=32,
    model_ema_decay=0.99998, ra_sampler=True, ra_reps=4,
    stochastic_depth_rate=0.1,  # the builder's default, torchvision's stochastic_depth_prob
)

MODELS.register_lazy(
    "convnext_tiny", "zoo.nets.convnext:convnext_tiny",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/convnext_tiny-983f1562.pth",
        lr_reference_batch=1024, input_size=224, eval_resize=236, interpolation="bilinear", min_input_size=32,
        reference_top1=82.520, reference_top5=96.146, classifier=("classifier.2",),
        reference_weights="ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
        reference="torchvision's ConvNeXt_Tiny_Weights.IMAGENET1K_V1, trained with the ConvNeXt command of "
        "references/classification/README.md (--model convnext_tiny --batch-size 128 --opt adamw --lr 1e-3 ... "
        "--train-crop-size 176 --model-ema --val-resize-size 232 --ra-sampler --ra-reps 4)",
        hparams=_HPARAMS),
    torchvision=TorchvisionSource("convnext_tiny"),
    params=28_589_128,
    description="ConvNeXt-T (96-192-384-768 channels, 3-3-9-3 blocks, layer scale 1e-6), torchvision's layout.",
)
