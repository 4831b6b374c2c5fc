"""torchvision's published weights -> a zoo model, without PyTorch: fetch, verify, convert, cache, assign.

    from weights.torchvision import load_torchvision_weights
    model = zoo.create_model("resnet50")
    report = load_torchvision_weights(model, "resnet50",
                                      source="https://download.pytorch.org/models/resnet50-0676ba61.pth")

The file is downloaded once into the cache and checked against the SHA-256 prefix in its name
(:mod:`weights.download`), read with the restricted, torch-free reader of :mod:`weights.torch_file`
(tensors and plain containers only; pickled code is refused), converted layer by layer, and the
converted weights are kept in the cache (``converted/<model>-<sha256>.v<N>.npz``), so that the next
load of the same file into the same model skips reading and converting the ``.pth``.

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

Fine-tuning on other classes leaves layers out (``exclude``: fnmatch patterns of our layer names,
typically the recipe's ``classifier``): their tensors in the file are accepted and ignored, the
layers keep their fresh initial weights, and the report names them.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from weights import torch_file
from weights.download import cache_dir as resolve_cache_dir
from weights.download import fetch

__all__ = [
    "ConversionError",
    "TorchvisionLoadReport",
    "assign_torch_weights",
    "classifier_size",
    "convert_layers",
    "converted_cache_path",
    "load_state_dict",
    "load_torchvision_weights",
    "torch_layer_weights",
]

_IGNORED_SUFFIXES = ("num_batches_tracked",)
# torchvision's DenseNet files keep the old module names "denselayerN.norm.1" / "conv.2" (now "norm1", "conv2");
# torchvision renames them when it loads them, and so does load_state_dict.
_LEGACY_DENSENET_KEY = re.compile(r"(denselayer\d+\.(?:norm|conv))\.([12])\.")
# Version of the converted-weights cache: raise it when a conversion rule changes.
_CONVERTED_FORMAT = 1
_LOG = logging.getLogger(__name__)


class ConversionError(ValueError):
    """The weights do not fit the model, or the file is not a weights-only PyTorch file; one line."""


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Reads a torchvision state_dict without PyTorch, as float32 numpy arrays.

    Accepts a bare state_dict or a training checkpoint that holds one under ``state_dict`` or
    ``model`` (torchvision's reference scripts); strips ``module.`` prefixes (DataParallel /
    DistributedDataParallel) and renames DenseNet's legacy keys. Entries that are not tensors (an
    epoch number) are left out.

    Raises:
        FileNotFoundError: no such file.
        ConversionError: not a weights-only PyTorch file (the refused global is named), or not a state_dict.
    """
    try:
        obj = torch_file.load(path)
    except torch_file.TorchFileError as e:
        raise ConversionError(str(e)) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}.")
    result = {}
    for name, tensor in obj.items():
        if not isinstance(tensor, np.ndarray) or not isinstance(name, str):
            continue  # e.g. a stored epoch number next to the weights
        name = name[len("module."):] if name.startswith("module.") else name
        name = _LEGACY_DENSENET_KEY.sub(r"\1\2.", name)
        result[name] = tensor.astype(np.float32, copy=False)
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
                "and number of classes? (To fine-tune on other classes, leave the classifier out: exclude / "
                "--restore_exclude.)")
    return [np.ascontiguousarray(v, dtype=np.float32) for v in values]


# -- a whole model --------------------------------------------------------------------------------

def _weighted_layers(model) -> Iterator[Tuple[object, Optional[Tuple[int, int, int]]]]:
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


def _excluded(layer_name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(layer_name, p) for p in patterns if p)


def _tensors_under(state: Mapping[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    tensors = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if prefix in state:  # a bare parameter (ViT's class_token) rather than a module
        tensors[""] = state[prefix]
    return tensors


def convert_layers(model, state: Mapping[str, np.ndarray], source=None,
                   exclude: Sequence[str] = ()) -> Tuple[Dict[str, List[np.ndarray]], List[str]]:
    """The converted values of every layer with weights, except the excluded ones; assigns nothing.

    Args:
        model: a built zoo model.
        state: a torchvision state_dict as numpy arrays.
        source: the model's :class:`zoo.recipe.TorchvisionSource` (layer name exceptions), if any.
        exclude: fnmatch patterns of our layer names to leave out; their tensors in ``state`` are
            accepted and ignored (they may have another shape, e.g. another number of classes).

    Returns:
        ``(values, excluded)``: layer name -> its weights in ``layer.weights`` order; the names of the
        layers left out.

    Raises:
        ConversionError: naming the first missing or unexpected key, or the first shape that differs.
    """
    values: Dict[str, List[np.ndarray]] = {}
    excluded: List[str] = []
    used_keys: Set[str] = set()
    for layer, flatten_hwc in _weighted_layers(model):
        prefix = source.torch_name(layer.name) if source is not None else layer.name
        tensors = _tensors_under(state, prefix)
        if _excluded(layer.name, exclude):
            used_keys.update(f"{prefix}.{k}" if k else prefix for k in tensors)
            excluded.append(layer.name)
            continue
        used: Set[str] = set()
        values[layer.name] = torch_layer_weights(layer, tensors, prefix, used, flatten_hwc)
        used_keys.update(f"{prefix}.{k}" if k else prefix for k in used)
    unexpected = sorted(k for k in state if k not in used_keys and not k.endswith(_IGNORED_SUFFIXES))
    if unexpected:
        raise ConversionError(f"unexpected key {unexpected[0]} in the state_dict ({len(unexpected)} unused in all): "
                              "it was written for another model; check --model.")
    return values, excluded


def assign_torch_weights(model, state: Mapping[str, np.ndarray], source=None, *,
                         exclude: Sequence[str] = ()) -> List[str]:
    """Sets every weight of ``model`` from torchvision's ``state`` (all or nothing).

    Args:
        model: a built zoo model.
        state: a torchvision state_dict as numpy arrays.
        source: the model's :class:`zoo.recipe.TorchvisionSource` (layer name exceptions), if any.
        exclude: fnmatch patterns of our layer names that keep their current weights.

    Returns:
        The torchvision names of the layers assigned.

    Raises:
        ConversionError: naming the first missing or unexpected key, or the first shape that differs.
    """
    values, _ = convert_layers(model, state, source, exclude)
    names = []
    for layer, _ in _weighted_layers(model):
        if layer.name in values:
            layer.set_weights(values[layer.name])
            names.append(source.torch_name(layer.name) if source is not None else layer.name)
    return names


def classifier_size(state: Mapping[str, np.ndarray], recipe, source=None) -> int:
    """Classes of the state_dict: the length of the classifier's bias (the recipe names the layer)."""
    for pattern in recipe.classifier:
        torch_name = source.torch_name(pattern) if source is not None else pattern
        for key in (f"{torch_name}.bias", f"{torch_name}.weight"):
            if key in state:
                return int(state[key].shape[0])
    return recipe.num_classes


# -- published weights, cached ---------------------------------------------------------------------

@dataclass
class TorchvisionLoadReport:
    """What :func:`load_torchvision_weights` did (the fields of :class:`weights.checkpoint.LoadReport`, and more).

    Attributes:
        path: the ``.pth`` file (in the download cache, or the local path given).
        restored: ``layer/variable`` names whose values came from the file.
        skipped: ``layer/variable`` names left as they were (excluded: kept fresh).
        sha256: the file's SHA-256.
        downloaded: whether this call downloaded the file.
        from_cache: whether the converted weights came from the cache (the ``.pth`` was not read).
        converted_path: the cache file of converted weights ("" when it could not be written).
    """

    path: str
    restored: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    sha256: str = ""
    downloaded: bool = False
    from_cache: bool = False
    converted_path: str = ""


def converted_cache_path(cache: Optional[str], model_name: str, sha256: str) -> str:
    """Where the converted weights of file ``sha256`` for model ``model_name`` are cached."""
    return os.path.join(resolve_cache_dir(cache), "converted", f"{model_name}-{sha256}.v{_CONVERTED_FORMAT}.npz")


def _read_converted(path: str) -> Dict[str, List[np.ndarray]]:
    """The cached converted weights (layer name -> values), or {} if there are none or they are unreadable."""
    if not os.path.isfile(path):
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:  # a damaged cache file: convert again
        _LOG.warning("%s: unreadable converted-weights cache (%s); converting again.", path, e)
        return {}
    layers: Dict[str, Dict[int, np.ndarray]] = {}
    for key, value in entries.items():
        name, _, index = key.rpartition(":")
        if name and index.isdigit():
            layers.setdefault(name, {})[int(index)] = value
    return {name: [by_index[i] for i in sorted(by_index)] for name, by_index in layers.items()
            if sorted(by_index) == list(range(len(by_index)))}


def _write_converted(path: str, values: Mapping[str, List[np.ndarray]]) -> bool:
    from atomic import publish_file

    arrays = {f"{name}:{i}": value for name, layer_values in values.items() for i, value in enumerate(layer_values)}
    try:
        with publish_file(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:  # a read-only or full cache costs the next load a conversion, nothing more
        _LOG.warning("%s: converted weights not cached (%s).", path, e)
        return False
    return True


def _fits(layer, values: Optional[List[np.ndarray]]) -> bool:
    return values is not None and len(values) == len(layer.weights) and all(
        tuple(v.shape) == tuple(w.shape) for v, w in zip(values, layer.weights))


def load_torchvision_weights(model, model_name: str, source: Optional[str] = None, cache_dir: Optional[str] = None,
                             exclude: Sequence[str] = (),
                             log: Optional[Callable[[str], None]] = None) -> TorchvisionLoadReport:
    """Assigns torchvision's weights (a URL or a ``.pth`` path) to ``model``, without PyTorch.

    The file is fetched into the cache and verified (:func:`weights.download.fetch`), read with the
    restricted reader, converted, and the converted weights cached by the file's SHA-256 and the
    model's name; a later call with the same file and model reads only that cache. Nothing is
    assigned unless every layer that is not excluded converts.

    Args:
        model: a built zoo model (any number of classes when the classifier is excluded).
        model_name: its registered name (the torchvision layer names and the cache key).
        source: URL or local path of the weights; default: the recipe's ``weights_url``.
        cache_dir: the cache directory (default: ``$MODELZOO_CACHE``, else ``~/.cache/modelzoo/weights``).
        exclude: fnmatch patterns of our layer names that keep their fresh weights (e.g. the recipe's
            ``classifier``, to fine-tune on another number of classes).
        log: called with a line on a download and on a conversion.

    Returns:
        A :class:`TorchvisionLoadReport` (restored and kept-fresh tensors, cache use).

    Raises:
        FileNotFoundError: a local path that does not exist.
        weights.download.HashMismatchError, weights.download.DownloadError: the file could not be had.
        ConversionError: the file is not weights-only, or does not fit the model (nothing assigned).
    """
    import zoo

    tv_source = zoo.get_torchvision_source(model_name)
    if source is None:
        source = getattr(zoo.get_recipe(model_name), "weights_url", None)
        if not source:
            raise ConversionError(f"{model_name} has no published torchvision weights; pass a URL or a .pth file.")
    fetched = fetch(source, cache_dir, log=log)
    converted_path = converted_cache_path(cache_dir, model_name, fetched.sha256)
    layers = [layer for layer, _ in _weighted_layers(model)]
    wanted = [layer for layer in layers if not _excluded(layer.name, exclude)]
    cached = _read_converted(converted_path)
    from_cache = all(_fits(layer, cached.get(layer.name)) for layer in wanted)
    if from_cache:
        values = {layer.name: cached[layer.name] for layer in wanted}
    else:
        if log:
            log(f"Converting {fetched.path} for {model_name}")
        values, _ = convert_layers(model, load_state_dict(fetched.path), tv_source, exclude)
        merged = dict(cached)
        merged.update(values)
        if not _write_converted(converted_path, merged):
            converted_path = ""
    report = TorchvisionLoadReport(path=fetched.path, sha256=fetched.sha256, downloaded=fetched.downloaded,
                                   from_cache=from_cache, converted_path=converted_path)
    for layer in layers:
        names = [f"{layer.name}/{_relative_name(v, layer)}" for v in layer.weights]
        if layer.name in values:
            layer.set_weights(values[layer.name])
            report.restored.extend(names)
        else:
            report.skipped.extend(names)
    return report
