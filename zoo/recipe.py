"""The default recipe that travels with each registered model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelRecipe:
    """Input conventions and reference hyper-parameters of a model.

    Preprocessing reads its sizes and normalisation from here, so they cannot drift apart from
    the model (slim kept them in separate maps, and they drifted).

    Attributes:
        input_size: training and evaluation crop size in pixels (square).
        min_input_size: smallest input the network accepts.
        eval_resize: resize before the central crop at evaluation.
        mean: per-channel mean on a 0..1 scale, RGB.
        std: per-channel standard deviation on a 0..1 scale, RGB.
        num_classes: classes of the reference training set.
        reference_top1: published top-1 accuracy (percent) of the reference recipe, if any.
        reference_top5: published top-5 accuracy (percent), if any.
        hparams: the reference optimiser settings (flag name -> value).
    """

    input_size: int = 224
    min_input_size: int = 63
    eval_resize: int = 256
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    reference_top1: Optional[float] = None
    reference_top5: Optional[float] = None
    hparams: Dict[str, Any] = field(default_factory=dict)

    def scaled(self, image_size: Optional[int]) -> ModelRecipe:
        """The recipe at another input size, with the eval resize scaled by the same factor."""
        if not image_size or image_size == self.input_size:
            return self
        resize = int(round(self.eval_resize * image_size / self.input_size))
        return replace(self, input_size=image_size, eval_resize=resize)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)
