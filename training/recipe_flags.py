"""A model's recipe supplies the defaults of the flags the user did not set.

``--model=resnet50`` trains with torchvision's ResNet-50 recipe (lr 0.1, step decay ...) and
``--model=alexnet`` with the Ascend recipe, each from the ``hparams`` registered with the model
(:class:`zoo.recipe.ModelRecipe`). A flag given on the command line or in a ``--flagfile`` always
wins (absl's ``present``); the run's first log lines say which values came from the recipe.
"""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["apply_recipe_defaults", "recipe_values_in_use"]


def apply_recipe_defaults(flag_values: Any, model: str, hparams: Dict[str, Any]) -> Dict[str, Any]:
    """Sets every flag named in ``hparams`` that the user did not set to the recipe's value.

    Args:
        flag_values: absl ``FlagValues`` (parsed). Other objects (plain namespaces in tests) are left alone.
        model: the model's name, for messages.
        hparams: flag name -> the recipe's value.

    Returns:
        flag name -> value, for the flags whose value now comes from the recipe.

    Raises:
        ValueError: the recipe names a flag that does not exist or gives it an invalid value.
    """
    if not hasattr(flag_values, "set_default"):
        return {}
    applied = {}
    for name, value in hparams.items():
        if name not in flag_values:
            raise ValueError(f"the recipe of model {model!r} sets --{name}, which is not a flag of this program; "
                             "fix the model's registered hparams.")
        if flag_values[name].present:
            continue
        if isinstance(value, (list, tuple)):
            value = [str(v) for v in value]
        try:
            flag_values.set_default(name, value)
        except Exception as e:  # absl's IllegalFlagValueError and validator errors
            raise ValueError(f"the recipe of model {model!r} gives --{name}={value!r}, which is invalid: {e}") from e
        applied[name] = flag_values[name].value
    return applied


def recipe_values_in_use(flag_values: Any, hparams: Dict[str, Any]) -> Dict[str, Any]:
    """flag name -> value for the recipe's flags that the user did not set (after :func:`apply_recipe_defaults`)."""
    if not hasattr(flag_values, "set_default"):
        return {}
    return {name: flag_values[name].value for name in hparams
            if name in flag_values and not flag_values[name].present}
