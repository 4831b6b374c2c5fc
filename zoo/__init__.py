"""The model zoo: importing this package registers every built-in model.

Use :func:`create_model` to build one by name with its registered recipe's defaults. Each family
has two modules: ``zoo/<family>.py`` registers its models with ``recipe=`` (:class:`ModelRecipe`, the
published settings), ``params=`` (the parameter count at 1000 classes, checked by the tests),
``torchvision=`` (:class:`TorchvisionSource`, the reference for weight conversion and parity) and
``description=``, and imports no TensorFlow; ``zoo/nets/<family>.py`` builds the Keras network, imported
when a model is created.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional

from registry import MODELS

# One import per family: each registers its models (no registration depends on another import).
from zoo import alexnet as _alexnet  # noqa: F401
from zoo import convnext as _convnext  # noqa: F401
from zoo import densenet as _densenet  # noqa: F401
from zoo import efficientnet as _efficientnet  # noqa: F401
from zoo import inception as _inception  # noqa: F401
from zoo import mobilenet as _mobilenet  # noqa: F401
from zoo import resnet as _resnet  # noqa: F401
from zoo import vgg as _vgg  # noqa: F401
from zoo import vit as _vit  # noqa: F401
from zoo.recipe import ModelRecipe, TorchvisionSource

__all__ = [
    "ModelArgumentError",
    "ModelRecipe",
    "TorchvisionSource",
    "create_model",
    "get_recipe",
    "recipe_settings",
    "get_torchvision_source",
    "inference_model",
    "list_models",
]


class ModelArgumentError(TypeError, ValueError):
    """A builder argument the model does not accept: a TypeError, and a ValueError for main.py's one-line errors."""


def list_models(include=None, exclude=None, *, builtin_only: bool = False) -> List[str]:
    """Names of the registered models, optionally filtered with wildcards (``"resnet*"``).

    Args:
        include, exclude: fnmatch patterns, as :meth:`registry.Registry.list`.
        builtin_only: only the zoo's own models, not those registered by other modules (plugins, tests).
    """
    names = MODELS.list(include, exclude)
    if builtin_only:
        names = [n for n in names if MODELS.entry(n).module.startswith(__name__ + ".")]
    return names


def get_recipe(name: str) -> ModelRecipe:
    """The default recipe registered with model ``name``."""
    recipe = MODELS.metadata(name).get("recipe")
    return recipe if recipe is not None else ModelRecipe()


def recipe_settings(name: str) -> Dict[str, Any]:
    """The settings model ``name``'s recipe gives a run: its training settings (flag name -> value), the
    global batch its ``lr`` is stated for, and its training input size (the recipe's ``train_crop_size`` where
    it trains smaller than it evaluates, FixRes, else its input size). Empty for a model registered without a
    recipe of its own (a plugin): such a run trains with the configuration's generic defaults."""
    recipe = MODELS.metadata(name).get("recipe")
    if recipe is None:
        return {}
    settings: Dict[str, Any] = {"image_size": recipe.hparams.get("train_crop_size", recipe.input_size)}
    settings.update(recipe.hparams)
    if "lr" in recipe.hparams:
        settings["lr_reference_batch"] = recipe.lr_reference_batch
    return settings


def get_torchvision_source(name: str) -> Optional[TorchvisionSource]:
    """The torchvision reference registered with model ``name``, or None."""
    return MODELS.metadata(name).get("torchvision")


def create_model(name: str, *, recipe: Optional[ModelRecipe] = None, **kwargs: Any):
    """Builds model ``name`` with keyword arguments checked against the builder's signature.

    Optional arguments whose value is None are dropped before the call (timm's convention), so a
    caller can pass every optional setting (``initializer``, ``dropout`` ...) and a builder that
    has no such argument keeps working. An argument given a value that the builder does not
    accept is an error.

    Args:
        name: a registered model name or alias.
        recipe: defaults for ``num_classes`` and ``image_size`` when those are not given; its
            ``min_input_size`` is enforced (default: the model's registered recipe).
        **kwargs: builder arguments.

    Raises:
        ModelArgumentError: an argument the builder does not accept (a TypeError); the message lists the
            accepted ones.
        ValueError: an input size below the recipe's minimum.
    """
    builder = MODELS.get(name)
    params = inspect.signature(builder).parameters
    accepted = {k for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    recipe = recipe or get_recipe(name)
    if "num_classes" in accepted:
        kwargs.setdefault("num_classes", recipe.num_classes)
    if "image_size" in accepted:
        kwargs.setdefault("image_size", recipe.input_size)
    unknown = sorted(set(kwargs) - accepted)
    if unknown and not has_var_kw:
        raise ModelArgumentError(
            f"model {name!r} does not accept {', '.join(unknown)}; it accepts {', '.join(sorted(accepted))}."
        )
    if "image_size" in kwargs:
        recipe.check_input_size(int(kwargs["image_size"]), model=MODELS.entry(name).name)
    return builder(**kwargs)


def inference_model(model):
    """The model with its main output only: auxiliary heads (inception_v3's) are pruned away.

    Evaluation, prediction and export use this view; it shares the model's layers and weights.
    """
    if len(model.outputs) == 1:
        return model
    from keras_compat import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # the structure Keras expects
    return keras.Model(inputs, model.outputs[0], name=model.name)
