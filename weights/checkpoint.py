"""Model weights from a TF checkpoint, whatever else the checkpoint holds.

A training checkpoint (``model.ckpt-N``) holds the model and its optimizer. TensorFlow stores each
variable once, under the first path it finds, so Keras 3 checkpoints name the model's weights
``optimizer/_trainable_variables/<i>`` and Keras 2 ones ``model/layer_with_weights-<i>/kernel``.
The checkpoint's object graph still records where every variable sits in the model, though, so
this module walks that graph: the model's layers that hold variables, in order, and each
layer's variables by name. That works for checkpoints written by either Keras, with any
optimizer, and for ``tools/convert_torchvision.py``'s output; an optimizer never has to be built
to read a model.

Models are matched layer by layer (the layers of a functional model that hold variables, their
own or their sub-layers'), and each layer's variables by name (or, inside sub-layers, in stored
order with names checked).

Fine-tuning skips layers by name (``--restore_exclude``, default the classifier ``logits``):
they keep their fresh initial values and may have another shape in the checkpoint.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from runs.checkpoints import list_checkpoints

__all__ = [
    "CheckpointLayer",
    "LoadReport",
    "checkpoint_layers",
    "checkpoint_mtime",
    "checkpoint_num_classes",
    "load_weights",
    "resolve_checkpoint",
]

_VALUE = "VARIABLE_VALUE"
_KERAS2_LAYER = re.compile(r"^layer_with_weights-(\d+)$")


@dataclass(frozen=True)
class CheckpointLayer:
    """One layer of the model as a checkpoint stores it.

    Attributes:
        index: position among the model's layers that hold variables.
        variables: variable name (``kernel``, ``bias``, ...) -> checkpoint key, in stored order.
    """

    index: int
    variables: Dict[str, str]


@dataclass
class LoadReport:
    """What :func:`load_weights` did.

    Attributes:
        path: the checkpoint prefix read.
        restored: ``layer/variable`` names whose values came from the checkpoint.
        skipped: ``layer/variable`` names left as they were (excluded).
    """

    path: str
    restored: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def resolve_checkpoint(path: str) -> str:
    """The checkpoint prefix for ``path``: a prefix itself, or the newest checkpoint in a directory.

    Raises:
        FileNotFoundError: naming what was looked for.
    """
    if not path:
        raise FileNotFoundError("no checkpoint given: pass --checkpoint_path=DIR/model.ckpt-N or --checkpoint_dir=DIR.")
    if tf.io.gfile.isdir(path):
        found = list_checkpoints(path)
        if found:
            return found[-1]
        state = tf.train.latest_checkpoint(path)  # checkpoints of other names, via the state file
        if state:
            return state
        raise FileNotFoundError(f"{path}: no checkpoint (model.ckpt-N.index) in this directory.")
    if tf.io.gfile.exists(path + ".index"):
        return path
    if path.endswith(".index") and tf.io.gfile.exists(path):
        return path[: -len(".index")]
    raise FileNotFoundError(
        f"{path}: not a checkpoint; pass a prefix such as DIR/model.ckpt-1000 (the part before .index) "
        "or a directory that holds checkpoints."
    )


def _object_graph(reader) -> trackable_object_graph_pb2.TrackableObjectGraph:
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return graph


def _children(graph, node_id: int) -> Dict[str, int]:
    return {c.local_name: c.node_id for c in graph.nodes[node_id].children}


def _variable_key(graph, node_id: int) -> Optional[str]:
    for attribute in graph.nodes[node_id].attributes:
        if attribute.name == _VALUE:
            return attribute.checkpoint_key
    return None


def _skipped_child(local_name: str) -> bool:
    # Keras 3 random layers (Dropout) track a seed generator's state: not a weight.
    return "seed_generator" in local_name


def _layer_variables(graph, node_id: int, prefix: str = "", seen: Optional[set] = None) -> Dict[str, str]:
    """A layer's variables: path inside the layer -> checkpoint key, depth first in stored order.

    Direct variables are named as stored (leading underscore dropped: Keras 3's ``_kernel``);
    variables of sub-layers (a multi-head attention's query/key/value projections, the layers of a
    nested model) get their sub-layer's path, e.g. ``query_dense/kernel``. A node reachable under
    two names (Keras tracks a nested model's layers twice) is read once.
    """
    seen = set() if seen is None else seen
    result: Dict[str, str] = {}
    for child in graph.nodes[node_id].children:
        if child.node_id in seen or _skipped_child(child.local_name):
            continue
        seen.add(child.node_id)
        name = prefix + child.local_name.lstrip("_")
        key = _variable_key(graph, child.node_id)
        if key is not None:
            result[name] = key
        else:
            result.update(_layer_variables(graph, child.node_id, name + "/", seen))
    return result


def checkpoint_layers(path: str) -> List[CheckpointLayer]:
    """The model's layers that hold variables, in model order, as stored in checkpoint ``path``.

    Keras 3 lists a functional model's layers under ``model/_operations/<i>``, Keras 2 its layers
    with weights under ``model/layer_with_weights-<i>``.

    Raises:
        ValueError: if the checkpoint holds no ``model`` (e.g. a bare variable dump).
    """
    reader = tf.train.load_checkpoint(path)
    graph = _object_graph(reader)
    root = _children(graph, 0)
    if "model" not in root:
        raise ValueError(
            f"{path}: this checkpoint holds no model (top-level objects: {', '.join(sorted(root)) or 'none'}); "
            "expected one written by training or by tools/convert_torchvision.py."
        )
    model = _children(graph, root["model"])
    if "_operations" in model:  # Keras 3
        ops = _children(graph, model["_operations"])
        layer_nodes = [ops[k] for k in sorted(ops, key=int)]
    else:  # Keras 2
        numbered = [(int(m.group(1)), node) for name, node in model.items() if (m := _KERAS2_LAYER.match(name))]
        layer_nodes = [node for _, node in sorted(numbered)]
    layers = []
    for node in layer_nodes:
        variables = _layer_variables(graph, node)
        if variables:
            layers.append(CheckpointLayer(index=len(layers), variables=variables))
    return layers


def _short_name(variable) -> str:
    """``kernel`` for Keras 3's ``kernel`` and Keras 2's ``conv1/kernel:0``."""
    return variable.name.split("/")[-1].split(":")[0]


def _model_layers(model) -> List[Tuple[str, list]]:
    """(layer name, variables) of the model's layers that hold variables, in model order."""
    return [(layer.name, list(layer.weights)) for layer in model.layers if layer.weights]


def _excluded(layer_name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(layer_name, p) for p in patterns if p)


def load_weights(model, path: str, *, exclude: Sequence[str] = ()) -> LoadReport:
    """Assigns the model's weights from checkpoint ``path``, layer by layer.

    Every variable of every layer not excluded must be in the checkpoint with the same shape;
    nothing is assigned unless all of them are (a mismatch leaves the model untouched).

    Args:
        model: a built Keras model of the same architecture as the checkpoint's.
        path: a checkpoint prefix or a directory (its newest checkpoint).
        exclude: fnmatch patterns of layer names to leave alone (e.g. ``["logits"]``).

    Returns:
        A :class:`LoadReport`.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the checkpoint's layers or shapes do not fit the model; the message names the
            first layer that differs.
    """
    path = resolve_checkpoint(path)
    stored = checkpoint_layers(path)
    ours = _model_layers(model)
    if len(stored) != len(ours):
        raise ValueError(
            f"{path}: the checkpoint has {len(stored)} layers with weights, model {model.name!r} has {len(ours)}; "
            "it was written for another model (check --model)."
        )
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    report = LoadReport(path=path)
    assignments = []
    for (layer_name, variables), layer in zip(ours, stored):
        if _excluded(layer_name, exclude):
            report.skipped.extend(f"{layer_name}/{_short_name(v)}" for v in variables)
            continue
        for variable, key in _match_variables(path, layer_name, variables, layer):
            name = f"{layer_name}/{_short_name(variable)}"
            want = tuple(variable.shape)
            have = tuple(shapes[key])
            if want != have:
                raise ValueError(
                    f"{path}: {name} has shape {have} in the checkpoint, {want} in the model. To fine-tune "
                    "on another number of classes, leave the classifier out with --restore_exclude (by default "
                    "the model's classifier); otherwise check --model, --num_classes and --image_size."
                )
            assignments.append((variable, key, name))
    for variable, key, name in assignments:
        variable.assign(np.asarray(reader.get_tensor(key)))
        report.restored.append(name)
    return report


def _match_variables(path: str, layer_name: str, variables: list, layer: CheckpointLayer):
    """Pairs a layer's variables with its stored ones: by name, or in order for sub-layer variables.

    A layer's own variables (``kernel``, ``gamma`` ...) are matched by name. Variables that live in
    sub-layers are stored under attribute paths (``query_dense/kernel``) that differ from Keras'
    variable names (``query/kernel``); they are matched in order, the order Keras tracks and
    stores them in, with their last names checked.
    """
    stored = list(layer.variables.items())
    if len(stored) != len(variables):
        raise ValueError(
            f"{path}: layer {layer_name} (weighted layer #{layer.index}) has {len(stored)} variables in the "
            f"checkpoint ({', '.join(n for n, _ in stored)}) and {len(variables)} in the model; it was written "
            "for another model (check --model)."
        )
    nested = any("/" in name for name, _ in stored)
    pairs = []
    for i, variable in enumerate(variables):
        short = _short_name(variable)
        if nested:
            stored_name, key = stored[i]
            if stored_name.rsplit("/", 1)[-1] != short:
                raise ValueError(f"{path}: layer {layer_name}: variable #{i} is {stored_name!r} in the checkpoint "
                                 f"and {short!r} in the model; it was written for another model (check --model).")
        else:
            key = layer.variables.get(short)
            if key is None:
                raise ValueError(
                    f"{path}: layer {layer_name} (weighted layer #{layer.index}) has no variable {short!r} in the "
                    f"checkpoint (it has {', '.join(layer.variables)})."
                )
        pairs.append((variable, key))
    return pairs


def checkpoint_num_classes(path: str) -> int:
    """The classifier size stored in a checkpoint: the length of its last layer's bias.

    Raises:
        ValueError: if the last layer has no 1-D variable.
    """
    path = resolve_checkpoint(path)
    layers = checkpoint_layers(path)
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    if layers:
        for key in reversed(list(layers[-1].variables.values())):
            if len(shapes[key]) == 1:
                return int(shapes[key][0])
    raise ValueError(f"{path}: cannot tell the number of classes; pass --num_classes.")


def checkpoint_mtime(path: str) -> float:
    """Seconds since the epoch at which checkpoint ``path`` was completed (its index file)."""
    return os.path.getmtime(path + ".index")
