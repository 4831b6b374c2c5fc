"""Vision Transformer: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/vit.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from typing import Dict

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's references/classification/README.md, "vit_b_16" (8 GPUs x 512 = global batch 4096; the
# published weights: 8 nodes x 8 GPUs x 64, the same global batch):
#   --epochs 300 --batch-size 512 --opt adamw --lr 0.003 --wd 0.3 --lr-scheduler cosineannealinglr
#   --lr-warmup-method linear --lr-warmup-epochs 30 --lr-warmup-decay 0.033 --amp --label-smoothing 0.11
#   --mixup-alpha 0.2 --auto-augment ra --clip-grad-norm 1 --ra-sampler --cutmix-alpha 1.0 --model-ema
# with train.py's defaults for the rest: --ra-reps 3, --ra-magnitude 9 (RandAugment's 2 ops), --model-ema-steps
# 32, --model-ema-decay 0.99998, --lr-min 0, 224 crops after a 256 resize. All of it; --amp is not a recipe
# setting (--precision chooses). AdamW's decay 0.3 applies to every parameter, embeddings included (the
# command sets no --transformer-embedding-decay, --norm-weight-decay or --bias-weight-decay).
_HPARAMS: Dict[str, object] = dict(
    optimizer="adamw", optimizer_epsilon=1e-8, adam_beta1=0.9, adam_beta2=0.999, lr=0.003, batch_size=512,
    max_epochs=300, warmup_epochs=30, lr_warmup_method="linear", lr_warmup_decay=0.033,
    lr_decay_after_warmup=True, lr_schedule="cosine", lr_min=0.0, lr_schedule_unit="epoch", weight_decay=0.3,
    label_smoothing=0.11, auto_augment="ra", ra_num_ops=2, ra_magnitude=9, mixup_alpha=0.2, cutmix_alpha=1.0,
    clip_grad_norm=1.0, model_ema=True, model_ema_steps=32, model_ema_decay=0.99998, ra_sampler=True, ra_reps=3,
    dropout=0.0,
)

MODELS.register_lazy(
    "vit_b_16", "zoo.nets.vit:vit_b_16",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/vit_b_16-c867db91.pth",
        lr_reference_batch=4096, input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=16,
        size_multiple=16, size_agnostic=False, reference_top1=81.072, reference_top5=95.318, classifier=("heads.head",),
        reference_weights="ViT_B_16_Weights.IMAGENET1K_V1",
        reference="torchvision's ViT_B_16_Weights.IMAGENET1K_V1, trained with the vit_b_16 command of "
        "references/classification/README.md (--model vit_b_16 --epochs 300 --batch-size 512 --opt adamw ... "
        "--ra-sampler --cutmix-alpha 1.0 --model-ema)",
        embedding_variables=("class_token*", "encoder.pos_embedding*"), hparams=_HPARAMS),
    torchvision=TorchvisionSource("vit_b_16", size_kwarg="image_size"),
    params=86_567_656,
    description="ViT-B/16 (12 layers, width 768, 12 heads, MLP 3072), torchvision's layout; input sizes are "
    "multiples of 16 and the position embedding fits one size.",
)
