"""MobileNet V2 and V3: the registered models and their published recipes.

This module imports no TensorFlow: the networks are built by ``zoo/nets/mobilenet.py`` when a model is
created, so listing the zoo and resolving a run's configuration stay fast.
"""

from __future__ import annotations

from registry import MODELS
from zoo.recipe import ModelRecipe, TorchvisionSource

# torchvision's references/classification/README.md ("MobileNetV2"), on 8 GPUs with train.py's batch of 32:
#   torchrun --nproc_per_node=8 train.py --model mobilenet_v2 --epochs 300 --lr 0.045 --wd 0.00004
#     --lr-step-size 1 --lr-gamma 0.98
# SGD momentum 0.9 without Nesterov, no warm-up, no label smoothing, lr x 0.98 after every epoch.
_RECIPE_V2 = dict(
    optimizer="momentum", momentum=0.9, use_nesterov=False, lr=0.045, batch_size=32, max_epochs=300,
    warmup_epochs=0, lr_schedule="exponential", lr_decay_epochs=1, lr_decay_factor=0.98, weight_decay=4e-5,
    label_smoothing=0.0, dropout=0.2,
)
# "MobileNetV3 Large & Small", on 8 GPUs:
#   torchrun --nproc_per_node=8 train.py --model $MODEL --epochs 600 --opt rmsprop --batch-size 128 --lr 0.064
#     --wd 0.00001 --lr-step-size 2 --lr-gamma 0.973 --auto-augment imagenet --random-erase 0.2
# train.py's --opt rmsprop is torch.optim.RMSprop(alpha=0.9, eps=0.0316, momentum=0.9): rmsprop_torch.
# Weight decay on every parameter (L2); no warm-up. The README's last step, "Then we averaged the parameters of
# the last 3 checkpoints that improved the Acc@1", follows training: tools/average_checkpoints.py --improved=3
# (the flag files keep enough checkpoints for it).
_RECIPE_V3 = dict(
    optimizer="rmsprop_torch", rmsprop_decay=0.9, momentum=0.9, optimizer_epsilon=0.0316, lr=0.064,
    batch_size=128, max_epochs=600, warmup_epochs=0, lr_schedule="exponential", lr_decay_epochs=2,
    lr_decay_factor=0.973, lr_schedule_unit="epoch", weight_decay=1e-5, label_smoothing=0.0, dropout=0.2,
    auto_augment="imagenet", random_erase=0.2,
)
# torchvision's weights meta: min_size (1, 1); IMAGENET1K_V1 transforms: bilinear resize 256, crop 224.


def _v3_reference(size: str, model: str) -> dict:
    """ModelRecipe's reference fields for torchvision's ``MobileNet_V3_<size>_Weights.IMAGENET1K_V1``."""
    return dict(reference_weights=f"MobileNet_V3_{size}_Weights.IMAGENET1K_V1",
                reference=f"torchvision's MobileNet_V3_{size}_Weights.IMAGENET1K_V1, trained with the MobileNetV3 "
                f"Large & Small command of references/classification/README.md (--model {model} --epochs 600 --opt "
                "rmsprop --batch-size 128 --lr 0.064 ...), then the average of the last 3 checkpoints that improved "
                "Acc@1 (tools/average_checkpoints.py --improved=3)")


# Depthwise networks train faster in fp32 than in mixed bfloat16 on CPUs (oneDNN's bfloat16 depthwise and
# element-wise kernels; bench/RESULTS.md, "Precision per model"): --precision=auto picks fp32 for them there.
_COMMON = dict(input_size=224, eval_resize=256, interpolation="bilinear", min_input_size=1, fp32_faster_on=("cpu",))

MODELS.register_lazy(
    "mobilenet_v2", "zoo.nets.mobilenet:mobilenet_v2",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        lr_reference_batch=256, reference_top1=71.878, reference_top5=90.286, classifier=("classifier.1",),
        reference_weights="MobileNet_V2_Weights.IMAGENET1K_V1",
        reference="torchvision's MobileNet_V2_Weights.IMAGENET1K_V1, trained with the MobileNetV2 command of "
        "references/classification/README.md (--model mobilenet_v2 --epochs 300 --lr 0.045 --wd 0.00004 "
        "--lr-step-size 1 --lr-gamma 0.98)",
        hparams=_RECIPE_V2, **_COMMON),
    torchvision=TorchvisionSource("mobilenet_v2"),
    params=3_504_872,
    description="MobileNetV2 (width 1.0): inverted residuals with linear bottlenecks, ReLU6; torchvision's layout.",
)

MODELS.register_lazy(
    "mobilenet_v3_large", "zoo.nets.mobilenet:mobilenet_v3_large",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
        lr_reference_batch=1024, reference_top1=74.042, reference_top5=91.340, classifier=("classifier.3",),
        **_v3_reference("Large", "mobilenet_v3_large"), hparams=_RECIPE_V3, **_COMMON),
    torchvision=TorchvisionSource("mobilenet_v3_large"),
    params=5_483_032,
    description="MobileNetV3-Large: inverted residuals with squeeze-and-excitation, hardswish; torchvision's "
    "layout (IMAGENET1K_V1 recipe).",
)

MODELS.register_lazy(
    "mobilenet_v3_small", "zoo.nets.mobilenet:mobilenet_v3_small",
    recipe=ModelRecipe(
        weights_url="https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        lr_reference_batch=1024, reference_top1=67.668, reference_top5=87.402, classifier=("classifier.3",),
        **_v3_reference("Small", "mobilenet_v3_small"), hparams=_RECIPE_V3, **_COMMON),
    torchvision=TorchvisionSource("mobilenet_v3_small"),
    params=2_542_856,
    description="MobileNetV3-Small: inverted residuals with squeeze-and-excitation, hardswish; torchvision's "
    "layout.",
)
