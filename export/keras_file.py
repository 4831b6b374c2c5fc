"""The ``.keras`` format: the network (float32, normalised images in, logits out) as one Keras file.

The zoo's own layers, initializers and activations (``zoo/layers.py``, ``zoo/nets/*.py``) are registered as
Keras serializable under the package name ``zoo`` (``zoo>LayerScale``...), so a file loads with
:func:`load_keras_model`, or with ``keras.models.load_model`` once the zoo's network modules are imported,
and gives the saved model's outputs exactly.
"""

from __future__ import annotations

from keras_compat import keras
from registry import MODELS

__all__ = ["KERAS_FILE", "load_keras_model", "register_zoo_objects", "save_keras_model"]

KERAS_FILE = "model.keras"


def register_zoo_objects() -> None:
    """Imports the network module of every registered model (the zoo's, and plugins already imported), which
    registers its serializable layers with Keras."""
    import zoo  # noqa: F401  (registers the zoo's models)

    for name in MODELS.list():
        MODELS.get(name)  # imports the builder's module


def save_keras_model(model, path: str) -> None:
    """Writes ``model`` (architecture and weights) to ``path``, a ``.keras`` file."""
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: a Keras file's name ends in .keras.")
    model.save(path)


def load_keras_model(path: str):
    """The model of a ``.keras`` file written by :func:`save_keras_model` (or any with zoo layers), for
    inference: no optimizer is restored."""
    register_zoo_objects()
    return keras.models.load_model(path, compile=False)
