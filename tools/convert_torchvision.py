"""torchvision AlexNet weights (a ``state_dict`` file) -> a TF checkpoint for ``--model=alexnet``.

    python tools/convert_torchvision.py --state_dict=alexnet-owt-7be5be79.pth --output_dir=weights/alexnet_tv
    python main.py --mode=evaluate --model=alexnet --checkpoint_dir=weights/alexnet_tv --data_dir=/data/imagenet

Layouts: PyTorch convolution kernels are (out, in, kh, kw) and TF's (kh, kw, in, out); linear weights are
(out, in) and Dense kernels (in, out). The first fully connected layer also needs its input order
changed: torchvision flattens the 256x6x6 feature map in (C, H, W) order, this project's NHWC network
in (H, W, C) order, so its 9216 input rows are permuted accordingly.

The file is read with ``torch.load(weights_only=True)``, PyTorch's safe loader that refuses pickled
code. PyTorch is needed only by this tool (``pip install torch``), not by training.
The checkpoint is ``<output_dir>/model.ckpt-0`` (step 0); it is written to a temporary directory
that is renamed into place, so ``output_dir`` either holds a complete checkpoint or does not exist.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Dict, Mapping, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

__all__ = ["LAYERS", "ConversionError", "convert", "load_state_dict", "to_tf_weights"]

# torchvision module index -> (our layer name, kind). features.N are convolutions, classifier.N linear.
LAYERS: Tuple[Tuple[str, str, str], ...] = (
    ("features.0", "conv1", "conv"),
    ("features.3", "conv2", "conv"),
    ("features.6", "conv3", "conv"),
    ("features.8", "conv4", "conv"),
    ("features.10", "conv5", "conv"),
    ("classifier.1", "fc6", "fc_chw"),
    ("classifier.4", "fc7", "fc"),
    ("classifier.6", "logits", "fc"),
)
_POOLED = (256, 6, 6)  # (C, H, W) of torchvision's flattened features


class ConversionError(ValueError):
    """The file is not a torchvision AlexNet state_dict; the message says what differs."""


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Reads a torchvision state_dict with PyTorch's weights-only loader, as float32 numpy arrays.

    Accepts a bare state_dict or a training checkpoint that holds one under ``state_dict`` or
    ``model``; strips ``module.`` prefixes (DataParallel).

    Raises:
        FileNotFoundError, ConversionError; ImportError naming the package to install.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--state_dict={path}: no such file.")
    try:
        import torch
    except ImportError as e:
        raise ImportError("this tool needs PyTorch to read .pth files: pip install torch (CPU build is enough).") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the safe loader refuses anything but tensors and plain containers
        raise ConversionError(f"{path}: not a weights-only PyTorch file ({e}).") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}.")
    result = {}
    for name, tensor in obj.items():
        name = name[len("module."):] if name.startswith("module.") else name
        result[name] = tensor.detach().cpu().float().numpy()
    return result


def to_tf_weights(state: Mapping[str, np.ndarray]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Our layer name -> (kernel, bias) in TF layout.

    Raises:
        ConversionError: missing or unexpected keys, or shapes that are not torchvision AlexNet's.
    """
    expected = {f"{prefix}.{part}" for prefix, _, _ in LAYERS for part in ("weight", "bias")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ConversionError(
            "not a torchvision AlexNet state_dict: "
            + "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                    f"unexpected {', '.join(unexpected)}" if unexpected else "") if x)
        )
    weights = {}
    for prefix, name, kind in LAYERS:
        w, b = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        if kind == "conv":
            if w.ndim != 4:
                raise ConversionError(f"{prefix}.weight: expected a 4-D convolution kernel, got shape {w.shape}.")
            kernel = w.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
        elif kind == "fc_chw":
            if w.ndim != 2 or w.shape[1] != int(np.prod(_POOLED)):
                raise ConversionError(f"{prefix}.weight: expected (4096, 9216), got {w.shape}.")
            # Row i of our kernel reads feature (h, w, c); torchvision's column for it is c*36 + h*6 + w.
            kernel = w.reshape((w.shape[0],) + _POOLED).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
        else:
            if w.ndim != 2:
                raise ConversionError(f"{prefix}.weight: expected a 2-D linear weight, got shape {w.shape}.")
            kernel = w.T
        weights[name] = (np.ascontiguousarray(kernel, dtype=np.float32), b.astype(np.float32))
    return weights


def convert(state_dict_path: str, output_dir: str) -> str:
    """Converts the file and writes ``<output_dir>/model.ckpt-0``; returns the checkpoint prefix.

    Raises:
        FileExistsError: ``output_dir`` exists and is not empty (nothing is overwritten).
        ConversionError: the weights are not torchvision AlexNet's.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise FileExistsError(f"--output_dir={output_dir} already exists and is not empty; pass a new directory.")
    weights = to_tf_weights(load_state_dict(state_dict_path))

    import tensorflow as tf

    import zoo

    num_classes = weights["logits"][1].shape[0]
    model = zoo.create_model("alexnet", num_classes=num_classes, image_size=224)
    for name, (kernel, bias) in weights.items():
        layer = model.get_layer(name)
        have = tuple(tuple(v.shape) for v in layer.weights)
        if have != (kernel.shape, bias.shape):
            raise ConversionError(
                f"{name}: converted shapes {kernel.shape}, {bias.shape} do not fit the model's {have}.")
        layer.set_weights([kernel, bias])

    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    try:
        tf.train.Checkpoint(model=model).write(os.path.join(tmp, "model.ckpt-0"))
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # empty (checked above)
        os.rename(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(output_dir, "model.ckpt-0")


def main(argv: Sequence[str]) -> int:
    from absl import flags

    f = flags.FLAGS
    if len(argv) > 1:
        print(f"unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        prefix = convert(f.state_dict, f.output_dir)
    except (FileNotFoundError, FileExistsError, ConversionError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {prefix} (model alexnet).")
    print(f"Evaluate it: python main.py --mode=evaluate --model=alexnet --checkpoint_path={prefix} "
          "--data_dir=/path/to/imagenet")
    return 0


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("state_dict", None, "torchvision AlexNet weights (.pth), e.g. alexnet-owt-7be5be79.pth.",
                        required=True)
    flags.DEFINE_string("output_dir", None, "New directory for the TF checkpoint model.ckpt-0.", required=True)
    app.run(main)
