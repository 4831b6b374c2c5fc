"""The zoo as a Python library: build models, read their input transform, train and evaluate from a config.

From a notebook or script in the repository root (or with it on ``sys.path``)::

    import modelzoo

    model = modelzoo.create_model("resnet18", num_classes=10)            # Keras model, torchvision's layout
    config = modelzoo.configure(model="resnet18", data_dir="my_photos", batch_size=32, max_epochs=5)
    result = modelzoo.train(config)                                      # what `main.py` does, same settings
    results = modelzoo.evaluate(config)

``configure`` resolves settings exactly as the command line does (defaults < the model's recipe <
``flagfile`` < the keywords given here) and returns a :class:`run_config.Resolved` whose ``config`` is
the typed :class:`run_config.RunConfig`; ``main.py`` runs the same :func:`modes.runner.run`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Sequence, Union

import registry
import run_config
import zoo
from run_config import Layer, Resolved, RunConfig

__all__ = ["configure", "create_model", "eval_transform", "evaluate", "list_models", "train"]


def list_models(include: Optional[Union[str, Sequence[str]]] = None) -> List[str]:
    """Names of the registered models, optionally filtered with wildcards (``"resnet*"``)."""
    return zoo.list_models(include)


def create_model(name: str, *, weights: Optional[str] = None, num_classes: Optional[int] = None,
                 image_size: Optional[int] = None, **kwargs: Any):
    """Builds zoo model ``name`` as a Keras model (NHWC inputs, normalised as :func:`eval_transform` does).

    Args:
        name: a registered model (see :func:`list_models`).
        weights: None (fresh weights), ``"torchvision"`` (the model's published torchvision weights,
            downloaded, checked and converted without PyTorch) or a path: a torchvision ``.pth`` file or a
            TF checkpoint (prefix or directory) of this model.
        num_classes: classifier size (default: the recipe's, 1000). With published weights and another
            size, the classifier keeps fresh weights.
        image_size: input size (default: the recipe's).
        **kwargs: builder arguments (``dropout``, ``initializer``, ...).
    """
    recipe = zoo.get_recipe(name).scaled(image_size)
    model = zoo.create_model(name, recipe=recipe, num_classes=num_classes, **kwargs)
    if weights is not None:
        exclude = () if num_classes in (None, recipe.num_classes) else tuple(recipe.classifier)
        if weights == "torchvision" or str(weights).endswith((".pth", ".pt")):
            from weights.torchvision import load_torchvision_weights

            load_torchvision_weights(model, name, source=None if weights == "torchvision" else weights,
                                     exclude=exclude)
        else:
            from weights.checkpoint import load_weights

            load_weights(model, weights, exclude=exclude)
    return model


def eval_transform(name: str, image_size: Optional[int] = None) -> Callable[[Any], Any]:
    """The model's evaluation input transform: encoded image bytes -> normalised float32 [size, size, 3].

    Exactly what ``--mode=evaluate``, ``--mode=predict`` and the exported SavedModel feed the network.
    """
    from datasets import preprocessing

    config = preprocessing.PreprocessConfig.from_recipe(zoo.get_recipe(name).scaled(image_size))

    def transform(encoded):
        return preprocessing.normalize_for(preprocessing.eval_image(encoded, config), config)

    return transform


def configure(*, flagfile: Optional[str] = None, **settings: Any) -> Resolved:
    """A run's configuration from keyword settings (flag names), as the command line would resolve it.

    Args:
        flagfile: a flag file (``configs/*.flags``), below the keywords.
        **settings: any setting by its flag name (``model``, ``batch_size``, ``lr`` ...).

    Raises:
        run_config.SettingError: an unknown setting or invalid value (one line naming it).
    """
    layers: List[Layer] = []
    if flagfile is not None:
        from main import command_line_layers  # the one flag-file reader

        layers += [layer for layer in command_line_layers([f"--flagfile={flagfile}"])[0] if layer.values]
    layers.append(Layer("python", dict(settings)))
    model = settings.get("model")
    if model is not None:
        registry.MODELS.entry(model)
    return run_config.resolve(layers, recipe_of=zoo.recipe_settings)


def _resolved(config: Union[Resolved, RunConfig]) -> Resolved:
    if isinstance(config, Resolved):
        return config
    return Resolved(config, {})


def train(config: Union[Resolved, RunConfig]):
    """Trains as ``main.py --mode=train`` does; returns the trainer's result (steps, last loss)."""
    from modes import runner

    resolved = _resolved(config)
    return runner.run(Resolved(run_config.with_values(resolved.config, {"mode": "train"}), resolved.sources))


def evaluate(config: Union[Resolved, RunConfig], *, layers: Sequence[Layer] = ()) -> list:
    """Evaluates every checkpoint of the run ``config`` names, with the run's own saved settings."""
    from modes import runner

    resolved = _resolved(config)
    resolved = Resolved(run_config.with_values(resolved.config, {"mode": "evaluate"}), resolved.sources)
    user = list(layers) or [Layer("python", {k: v for k, v in _flat(resolved).items()
                                             if resolved.sources.get(k) == "python"})]
    return runner.run(runner.configure(resolved, user))


def _flat(resolved: Resolved) -> dict:
    return {flag: run_config.value_of(resolved.config, flag) for flag in {s.flag for s in
                                                                          run_config.SETTINGS.values()}}


if __name__ == "__main__":  # pragma: no cover - a library, not a program
    raise SystemExit(f"{os.path.basename(__file__)} is a library; run main.py for the command line.")
