"""EfficientNet: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/efficientnet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# timm's EfficientNet-B0 RandAugment recipe (77.7% top-1; timm's docs, training_hparam_examples), which produced
# torchvision's weights (references/classification/README.md: "The weights of the B0-B4 variants are ported from
# Ross Wightman's timm repo"; efficientnet_b0_rwightman is timm's efficientnet_b0_ra):
# ./distributed_train.sh 2 /imagenet/ --model efficientnet_b0 -b 384 --sched step --epochs 450
#   --decay-epochs 2.4 --decay-rate .97 --opt rmsproptf --opt-eps .001 -j 8 --warmup-lr 1e-6
#   --weight-decay 1e-5 --drop 0.2 --drop-connect 0.2 --model-ema --model-ema-decay 0.9999
#   --aa rand-m9-mstd0.5 --remode pixel --reprob 0.2 --amp --lr .048
# i.e. 2 GPUs x 384 images, lr 0.048 for that batch of 768 (timm does not rescale it); timm's RMSpropTF is
# rmsprop_tf (decay 0.9, momentum 0.9: timm's defaults); 3 warm-up epochs (timm's default) linear from 1e-6;
# label smoothing 0.1 (timm's default); no weight decay on biases and batch-norm parameters (timm skips every
# 1-D parameter); random erasing with per-pixel noise; timm's ModelEma: the decay 0.9999 as given, every step,
# no reset during the warm-up (--nomodel_ema_adjust --model_ema_warmup=none; evaluate and export serve the
# average); timm's RandAugment string rand-m9-mstd0.5 (datasets/augment.py); timm's default
# --train-interpolation random (bilinear or bicubic per image). --amp is not a recipe setting (--precision
# chooses). Approximated (docs/zoo.md, tests/data/reference_recipes.json): timm's average starts from the
# weights at its creation, this one from the first step's.
_RECIPE = dict(
    optimizer="rmsprop_tf", rmsprop_decay=0.9, momentum=0.9, optimizer_epsilon=1e-3, lr=0.048, batch_size=384,
    max_epochs=450, warmup_epochs=3, lr_warmup_method="linear", lr_warmup_decay=1e-6 / 0.048,
    lr_schedule="exponential", lr_decay_factor=0.97, lr_decay_epochs=2.4, lr_schedule_unit="epoch",
    weight_decay=1e-5, norm_weight_decay=0.0, bias_weight_decay=0.0, label_smoothing=0.1,
    auto_augment="rand-m9-mstd0.5", train_interpolation="random", random_erase=0.2, random_erase_value="random",
    model_ema=True, model_ema_steps=1, model_ema_decay=0.9999, model_ema_adjust=False, model_ema_warmup="none",
    dropout=0.2, stochastic_depth_rate=0.2,  # timm's --drop 0.2 --drop-connect 0.2 (the builder's defaults)
)

MODELS.register_lazy(
    "efficientnet_b0", "zoo.nets.efficientnet:efficientnet_b0",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        # Faster in fp32 than in mixed bfloat16 on CPUs (depthwise convolutions; bench/RESULTS.md, "Precision per
        # model"): --precision=auto picks fp32 there.
        fp32_faster_on=("cpu",),
        lr_reference_batch=768, input_size=224, eval_resize=256, interpolation="bicubic", min_input_size=1,
        reference_top1=77.692, reference_top5=93.532, classifier=("classifier.1",),
        reference_weights="EfficientNet_B0_Weights.IMAGENET1K_V1",
        reference="torchvision's EfficientNet_B0_Weights.IMAGENET1K_V1 (timm's efficientnet_b0_ra weights), trained "
        "with timm's EfficientNet-B0 RandAugment command (./distributed_train.sh 2 ... -b 384 --sched step --epochs "
        "450 ... --opt rmsproptf ... --model-ema --model-ema-decay 0.9999 --aa rand-m9-mstd0.5 ... --lr .048)",
        hparams=_RECIPE),
    torchvision=TorchvisionSource("efficientnet_b0"),
    params=5_288_548,
    description="EfficientNet-B0 (MBConv + squeeze-excitation, SiLU, stochastic depth 0.2), torchvision's layout.",
)
