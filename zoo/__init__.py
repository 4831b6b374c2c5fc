"""The model zoo: importing this package registers every built-in model.

Use :func:`create_model` to build one by name with its registered recipe's defaults.
"""

from __future__ import annotations

import inspect
from typing import Any, List, Optional

from registry import MODELS
from zoo import alexnet as _alexnet  # noqa: F401  (registers alexnet, alexnet_modelzoo)
from zoo.recipe import ModelRecipe

__all__ = ["ModelRecipe", "create_model", "get_recipe", "list_models"]


def list_models(include=None, exclude=None) -> List[str]:
    """Names of the registered models, optionally filtered with wildcards (``"alexnet*"``)."""
    return MODELS.list(include, exclude)


def get_recipe(name: str) -> ModelRecipe:
    """The default recipe registered with model ``name``."""
    recipe = MODELS.metadata(name).get("recipe")
    return recipe if recipe is not None else ModelRecipe()


def create_model(name: str, *, recipe: Optional[ModelRecipe] = None, **kwargs: Any):
    """Builds model ``name`` with keyword arguments checked against the builder's signature.

    Args:
        name: a registered model name or alias.
        recipe: defaults for ``num_classes`` and ``image_size`` when those are not given.
        **kwargs: builder arguments. Unknown names raise a TypeError that lists the accepted ones.
    """
    builder = MODELS.get(name)
    params = inspect.signature(builder).parameters
    accepted = {k for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if recipe is not None:
        if "num_classes" in accepted:
            kwargs.setdefault("num_classes", recipe.num_classes)
        if "image_size" in accepted:
            kwargs.setdefault("image_size", recipe.input_size)
    unknown = sorted(set(kwargs) - accepted)
    if unknown and not has_var_kw:
        raise TypeError(
            f"model {name!r} does not accept {', '.join(unknown)}; it accepts {', '.join(sorted(accepted))}."
        )
    return builder(**kwargs)
