"""torchvision's own models as the reference for every zoo architecture (random weights, eval mode).

torchvision is imported through ``tools/torchvision_models.py``, which explains why its compiled-operator
registrations are replaced by a stand-in beside the CPU build of torch.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tools.torchvision_models import import_models  # noqa: E402


def import_torchvision():
    """``torchvision.models``; skips the test where torchvision is not installed."""
    try:
        return import_models()
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.skip(str(e))


def reference_model(source, *, num_classes: int, image_size: Optional[int] = None, seed: int = 0):
    """torchvision's model for a :class:`zoo.recipe.TorchvisionSource`, random weights, eval mode.

    Every parameter and buffer is random (batch-norm statistics and affine terms included), so that
    a converter that mixed any two of them up would change the logits.
    """
    models = import_torchvision()
    kwargs: Dict[str, Any] = dict(source.kwargs)
    if source.size_kwarg and image_size:
        kwargs[source.size_kwarg] = image_size
    torch.manual_seed(seed)
    model = models.get_model(source.builder, weights=None, num_classes=num_classes, **kwargs)
    randomize(model, seed)
    return model.eval()


def randomize(model, seed: int = 0) -> None:
    """Gives batch/layer-norm parameters and statistics and all biases random, moderate values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)):
                if module.weight is not None:
                    module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.5 + 0.75)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
                if getattr(module, "running_mean", None) is not None:
                    module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                    module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) * 0.5 + 0.75)
            for name, param in module.named_parameters(recurse=False):
                if name.endswith("bias") and not isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
                elif param.abs().max() == 0 or (param == param.flatten()[0]).all():
                    # zero- or constant-initialised parameters (ViT's class token, layer scales, zeroed heads)
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.05 + 0.1)


def state_dict_numpy(model) -> Dict[str, np.ndarray]:
    """The model's state_dict as float32 numpy arrays (what ``convert_torchvision.load_state_dict`` returns)."""
    return {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}


def torch_logits(model, images_nhwc: np.ndarray) -> np.ndarray:
    """PyTorch logits (eval mode, float32) for NHWC float images."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.double().numpy()
