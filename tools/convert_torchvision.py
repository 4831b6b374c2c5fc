"""torchvision weights (a ``state_dict`` file) -> a TF checkpoint of the same zoo model.

    python tools/convert_torchvision.py --model=resnet50 --state_dict=resnet50-0676ba61.pth --output_dir=weights/r50
    python main.py --mode=evaluate --model=resnet50 --checkpoint_dir=weights/r50 --data_dir=/data/imagenet

Every zoo model names its layers after torchvision's modules (``layer1.0.conv1``, ``features.3``),
or lists the exceptions in its registered :class:`zoo.recipe.TorchvisionSource` (AlexNet's
``conv1`` is ``features.0``), so one converter serves the whole zoo, layer by layer:

* ``Conv2D``: (out, in/groups, kh, kw) -> (kh, kw, in/groups, out); ``DepthwiseConv2D``:
  (C x m, 1, kh, kw) -> (kh, kw, C, m).
* ``Dense``: (out, in) -> (in, out). A Dense layer fed by a ``Flatten`` of an (H, W, C) map (AlexNet,
  VGG) also has its input rows permuted: torchvision flattens in (C, H, W) order, NHWC in (H, W, C).
* ``BatchNormalization``: weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
  moving_variance (``num_batches_tracked`` is not needed). ``LayerNormalization``: weight, bias.
* ``MultiHeadAttention``: the packed ``in_proj_weight`` (3d, d) is split into query, key and value
  kernels (d, heads, d/heads); ``out_proj`` becomes the output kernel (heads, d/heads, d).
* Any other layer with weights implements ``torch_weights(tensors)``, given the tensors under its
  torchvision name, returning its weights in ``layer.weights`` order.

The file is read with ``torch.load(weights_only=True)``, PyTorch's safe loader that refuses pickled
code; PyTorch is needed only by this tool, not by training. The output is ``<output_dir>/model.ckpt-0``
(step 0), published atomically: ``output_dir`` either holds a complete checkpoint or does not exist.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

__all__ = ["ConversionError", "assign_torch_weights", "convert", "load_state_dict", "torch_layer_weights"]

_IGNORED_SUFFIXES = ("num_batches_tracked",)
# torchvision's DenseNet files keep the old module names "denselayerN.norm.1" / "conv.2" (now "norm1", "conv2");
# torchvision renames them when it loads them, and so does load_state_dict.
_LEGACY_DENSENET_KEY = re.compile(r"(denselayer\d+\.(?:norm|conv))\.([12])\.")


class ConversionError(ValueError):
    """The weights do not fit the model; the message names the first key or shape that differs."""


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Reads a torchvision state_dict with PyTorch's weights-only loader, as float32 numpy arrays.

    Accepts a bare state_dict or a training checkpoint that holds one under ``state_dict``,
    ``model`` or ``model_ema`` (torchvision's reference scripts); strips ``module.`` prefixes
    (DataParallel / DistributedDataParallel).

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
            break
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}.")
    result = {}
    for name, tensor in obj.items():
        if not hasattr(tensor, "detach"):
            continue  # e.g. a stored epoch number next to the weights
        name = name[len("module."):] if name.startswith("module.") else name
        name = _LEGACY_DENSENET_KEY.sub(r"\1\2.", name)
        result[name] = tensor.detach().cpu().float().numpy()
    return result


# -- one layer -------------------------------------------------------------------------------------

def _relative_name(variable, layer) -> str:
    """``kernel`` or ``query/kernel``: the variable's path inside its layer, on Keras 3 and Keras 2."""
    from keras_compat import variable_path

    parts = variable_path(variable).split("/")
    if layer.name in parts:
        parts = parts[len(parts) - parts[::-1].index(layer.name):]
    elif len(parts) > 1:
        parts = parts[1:]
    return "/".join(parts)


def _take(tensors: Mapping[str, np.ndarray], key: str, prefix: str, used: Set[str]) -> np.ndarray:
    if key not in tensors:
        raise ConversionError(f"missing {prefix}.{key} in the state_dict (needed by layer {prefix}).")
    used.add(key)
    return tensors[key]


def _conv(layer, t, prefix, used) -> Dict[str, np.ndarray]:
    w = _take(t, "weight", prefix, used)
    out = {"kernel": w.transpose(2, 3, 1, 0)}
    if getattr(layer, "use_bias", False):
        out["bias"] = _take(t, "bias", prefix, used)
    return out


def _depthwise(layer, t, prefix, used) -> Dict[str, np.ndarray]:
    w = _take(t, "weight", prefix, used)
    # Keras 2 names the variable "depthwise_kernel", Keras 3 "kernel" (attribute and variable alike).
    kernel = getattr(layer, "depthwise_kernel", None)
    kernel = layer.kernel if kernel is None else kernel
    kh, kw = w.shape[2], w.shape[3]
    value = w.reshape(kernel.shape[2], -1, kh, kw).transpose(2, 3, 0, 1)
    out = {"depthwise_kernel": value, "kernel": value}
    if getattr(layer, "use_bias", False):
        out["bias"] = _take(t, "bias", prefix, used)
    return out


def _dense(layer, t, prefix, used, flatten_hwc: Optional[Tuple[int, int, int]] = None) -> Dict[str, np.ndarray]:
    w = _take(t, "weight", prefix, used)
    if flatten_hwc is not None and w.ndim == 2 and w.shape[1] == int(np.prod(flatten_hwc)):
        h, wd, c = flatten_hwc
        # Our row for feature (h, w, c) is torchvision's column c*H*W + h*W + w.
        kernel = w.reshape(w.shape[0], c, h, wd).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
    else:
        kernel = w.T
    out = {"kernel": kernel}
    if getattr(layer, "use_bias", False):
        out["bias"] = _take(t, "bias", prefix, used)
    return out


def _batch_norm(layer, t, prefix, used) -> Dict[str, np.ndarray]:
    out = {"moving_mean": _take(t, "running_mean", prefix, used),
           "moving_variance": _take(t, "running_var", prefix, used)}
    if layer.scale:
        out["gamma"] = _take(t, "weight", prefix, used)
    if layer.center:
        out["beta"] = _take(t, "bias", prefix, used)
    return out


def _layer_norm(layer, t, prefix, used) -> Dict[str, np.ndarray]:
    out = {}
    if layer.scale:
        out["gamma"] = _take(t, "weight", prefix, used)
    if layer.center:
        out["beta"] = _take(t, "bias", prefix, used)
    return out


def _attention(layer, t, prefix, used) -> Dict[str, np.ndarray]:
    w_in = _take(t, "in_proj_weight", prefix, used)
    b_in = _take(t, "in_proj_bias", prefix, used)
    w_out = _take(t, "out_proj.weight", prefix, used)
    b_out = _take(t, "out_proj.bias", prefix, used)
    dim = w_out.shape[0]
    heads = layer.num_heads if hasattr(layer, "num_heads") else layer._num_heads
    head_dim = dim // heads
    out = {}
    for i, part in enumerate(("query", "key", "value")):
        w = w_in[i * dim:(i + 1) * dim]  # (d_out, d_in)
        out[f"{part}/kernel"] = w.T.reshape(dim, heads, head_dim)
        out[f"{part}/bias"] = b_in[i * dim:(i + 1) * dim].reshape(heads, head_dim)
    out["attention_output/kernel"] = w_out.T.reshape(heads, head_dim, dim)
    out["attention_output/bias"] = b_out
    return out


_CONVERTERS = {
    "Conv2D": _conv,
    "DepthwiseConv2D": _depthwise,
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "MultiHeadAttention": _attention,
}


def torch_layer_weights(layer, tensors: Mapping[str, np.ndarray], prefix: str, used: Set[str],
                        flatten_hwc: Optional[Tuple[int, int, int]] = None) -> List[np.ndarray]:
    """The values of ``layer.weights``, in order, from the torchvision tensors under ``prefix``.

    Args:
        layer: a Keras layer with weights.
        tensors: the state_dict entries under the layer's torchvision name, keys relative to it.
        prefix: the torchvision name, for messages.
        used: receives the relative keys consumed.
        flatten_hwc: for a Dense layer fed by a Flatten, the (H, W, C) shape flattened.

    Raises:
        ConversionError: a missing tensor, a shape that does not fit, or an unknown layer type.
    """
    kind = type(layer).__name__
    if hasattr(layer, "torch_weights"):
        try:
            values = list(layer.torch_weights(dict(tensors)))
        except (KeyError, ValueError) as e:  # the layer's own words on what is missing or wrong
            message = e.args[0] if e.args else e
            raise ConversionError(f"{prefix}: {message}") from None
        used.update(tensors)
    elif kind in _CONVERTERS:
        fn = _CONVERTERS[kind]
        by_name = fn(layer, tensors, prefix, used, flatten_hwc) if kind == "Dense" else fn(layer, tensors, prefix, used)
        values = []
        for variable in layer.weights:
            rel = _relative_name(variable, layer)
            if rel not in by_name:
                raise ConversionError(f"{prefix}: no torchvision tensor for variable {rel!r} of {kind} layer "
                                      f"{layer.name}.")
            values.append(by_name[rel])
    else:
        raise ConversionError(f"layer {layer.name} ({kind}) has weights but no torchvision conversion; give the "
                              "layer a torch_weights(tensors) method.")
    if len(values) != len(layer.weights):
        raise ConversionError(f"{prefix}: {len(values)} tensors for the {len(layer.weights)} weights of {layer.name}.")
    for variable, value in zip(layer.weights, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise ConversionError(
                f"{prefix}: converted shape {tuple(value.shape)} does not fit {layer.name}/"
                f"{_relative_name(variable, layer)} {tuple(variable.shape)}; is the state_dict for this model "
                "and number of classes?")
    return [np.ascontiguousarray(v, dtype=np.float32) for v in values]


# -- a whole model --------------------------------------------------------------------------------

def _weighted_layers(model):
    """(layer, flatten_hwc) for each layer with weights, in model order; flatten_hwc for Dense after Flatten."""
    pending = None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Flatten":
            shape = tuple(layer.input.shape)
            pending = tuple(int(s) for s in shape[1:]) if len(shape) == 4 else None
            continue
        if kind in ("Dropout", "Activation", "ReLU"):
            continue  # shape-preserving layers between Flatten and the first Dense
        if layer.weights:
            yield layer, (pending if kind == "Dense" else None)
        pending = None


def assign_torch_weights(model, state: Mapping[str, np.ndarray], source=None) -> List[str]:
    """Sets every weight of ``model`` from torchvision's ``state`` (all or nothing).

    Args:
        model: a built zoo model.
        state: a torchvision state_dict as numpy arrays.
        source: the model's :class:`zoo.recipe.TorchvisionSource` (layer name exceptions), if any.

    Returns:
        The torchvision names of the layers assigned.

    Raises:
        ConversionError: naming the first missing or unexpected key, or the first shape that differs.
    """
    assignments, names, used_keys = [], [], set()
    for layer, flatten_hwc in _weighted_layers(model):
        prefix = source.torch_name(layer.name) if source is not None else layer.name
        tensors = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if prefix in state:  # a bare parameter (ViT's class_token) rather than a module
            tensors[""] = state[prefix]
        used: Set[str] = set()
        values = torch_layer_weights(layer, tensors, prefix, used, flatten_hwc)
        used_keys.update(f"{prefix}.{k}" if k else prefix for k in used)
        assignments.append((layer, values))
        names.append(prefix)
    unexpected = sorted(k for k in state if k not in used_keys and not k.endswith(_IGNORED_SUFFIXES))
    if unexpected:
        raise ConversionError(f"unexpected key {unexpected[0]} in the state_dict ({len(unexpected)} unused in all): "
                              "it was written for another model; check --model.")
    for layer, values in assignments:
        layer.set_weights(values)
    return names


def convert(state_dict_path: str, output_dir: str, model_name: str = "alexnet") -> str:
    """Converts the file and writes ``<output_dir>/model.ckpt-0``; returns the checkpoint prefix.

    Raises:
        FileExistsError: ``output_dir`` exists and is not empty (nothing is overwritten).
        ConversionError: the weights do not fit ``model_name``.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise FileExistsError(f"--output_dir={output_dir} already exists and is not empty; pass a new directory.")
    state = load_state_dict(state_dict_path)

    import tensorflow as tf

    import zoo
    from atomic import publish_directory

    source = zoo.get_torchvision_source(model_name)
    recipe = zoo.get_recipe(model_name)
    num_classes = _classifier_size(state, recipe, source)
    model = zoo.create_model(model_name, num_classes=num_classes)
    assign_torch_weights(model, state, source)
    with publish_directory(output_dir) as tmp:
        tf.train.Checkpoint(model=model).write(os.path.join(tmp, "model.ckpt-0"))
    return os.path.join(output_dir, "model.ckpt-0")


def _classifier_size(state: Mapping[str, np.ndarray], recipe, source) -> int:
    """Classes of the state_dict: the length of the classifier's bias (the recipe names the layer)."""
    for pattern in recipe.classifier:
        torch_name = source.torch_name(pattern) if source is not None else pattern
        for key in (f"{torch_name}.bias", f"{torch_name}.weight"):
            if key in state:
                return int(state[key].shape[0])
    return recipe.num_classes


def main(argv: Sequence[str]) -> int:
    from absl import flags

    f = flags.FLAGS
    if len(argv) > 1:
        print(f"unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    import registry

    try:
        model_name = registry.MODELS.entry(f.model).name
        prefix = convert(f.state_dict, f.output_dir, model_name)
    except (FileNotFoundError, FileExistsError, ConversionError, ImportError, registry.RegistryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {prefix} (model {model_name}).")
    print(f"Evaluate it: python main.py --mode=evaluate --model={model_name} --checkpoint_path={prefix} "
          "--data_dir=/path/to/imagenet")
    return 0


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("model", "alexnet", "Zoo model the weights are for (python main.py --list).")
    flags.DEFINE_string("state_dict", None, "torchvision weights (.pth), e.g. resnet50-0676ba61.pth.", required=True)
    flags.DEFINE_string("output_dir", None, "New directory for the TF checkpoint model.ckpt-0.", required=True)
    app.run(main)
