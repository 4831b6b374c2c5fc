"""Fine-tuning: weights to start from (``--pretrained``), what trains (``--freeze``), the head's learning rate.

* ``--pretrained``: ``torchvision`` (the model's published weights: its recipe's ``weights_url``,
  downloaded once into ``--weights_cache_dir``, checked against the SHA-256 prefix in the file name and
  converted without PyTorch, :mod:`weights.torchvision`), a torchvision ``.pth`` file or URL, or a TF
  checkpoint (prefix or directory, :mod:`weights.checkpoint`). The classifier (the recipe's
  ``classifier`` patterns) keeps its fresh weights when ``--num_classes`` differs from the weights'
  (``--restore_exclude`` overrides that); the log names the tensors kept fresh. A checkpoint in
  ``--checkpoint_dir`` wins: a resumed run continues from its own weights.
* ``--freeze``: ``backbone`` (every layer but the classifier) and/or fnmatch patterns of layer names.
  Frozen layers are ``trainable = False``: their variables leave ``model.trainable_variables``, so the
  optimizer, weight decay and gradients never touch them, and their batch norm runs in inference mode
  (the moving statistics are used and left unchanged: ``zoo.layers.BatchNormalization`` and Keras'
  own layer both read ``trainable``).
* ``--head_lr_multiplier``: the classifier's variables learn at ``lr x m``; the optimizer takes one
  multiplier per trainable variable (:func:`training.optimizers.with_lr_multipliers`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from keras_compat import variable_value
from run_config import FineTuneConfig

__all__ = ["BACKBONE", "FreezeReport", "Tuning", "freeze_layers", "load_pretrained", "lr_multipliers", "prepare",
           "pretrained_kind"]

BACKBONE = "backbone"


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns if p)


def _weighted_layers(model) -> list:
    return [layer for layer in model.layers if layer.weights]


def _params(variables) -> int:
    total = 0
    for v in variables:
        count = 1
        for d in v.shape:
            count *= int(d)
        total += count
    return total


@dataclass
class FreezeReport:
    """What :func:`freeze_layers` froze.

    Attributes:
        layers: names of the frozen layers (those with weights).
        batch_norm: how many of them are batch-norm layers (now in inference mode).
        frozen_params: parameters that no longer train.
        trainable_params: parameters that still train.
    """

    layers: List[str] = field(default_factory=list)
    batch_norm: int = 0
    frozen_params: int = 0
    trainable_params: int = 0

    def describe(self, patterns: Sequence[str]) -> str:
        shown = ", ".join(self.layers[:4]) + (f" ... ({len(self.layers)} layers)" if len(self.layers) > 4 else "")
        return (f"--freeze={','.join(patterns)}: {len(self.layers)} layers frozen ({shown}), "
                f"{self.batch_norm} of them batch norm in inference mode; {self.trainable_params:,} parameters "
                f"train, {self.frozen_params:,} frozen")


def freeze_layers(model, patterns: Sequence[str], classifier: Sequence[str]) -> FreezeReport:
    """Sets ``trainable = False`` on the layers ``patterns`` name (``backbone``: all but ``classifier``).

    Args:
        model: a built Keras model; its top-level layers are matched by name.
        patterns: ``backbone`` and/or fnmatch patterns of layer names.
        classifier: fnmatch patterns of the classifier layers (the recipe's).

    Returns:
        A :class:`FreezeReport`.

    Raises:
        ValueError: a pattern that names no layer, ``backbone`` for a model whose classifier patterns
            name no layer, or a selection that leaves nothing to train (one line each).
    """
    layers = _weighted_layers(model)
    names = [layer.name for layer in layers]
    chosen = set()
    for pattern in patterns:
        if pattern == BACKBONE:
            head = [n for n in names if _matches(n, classifier)]
            if not head:
                raise ValueError(f"--freeze=backbone: the model's classifier patterns ({', '.join(classifier)}) name "
                                 "no layer; freeze layers by name instead (--freeze=PATTERN,...).")
            chosen.update(n for n in names if n not in head)
            continue
        found = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise ValueError(f"--freeze: {pattern!r} names no layer with weights (layers: {', '.join(names[:6])}"
                             f"{' ...' if len(names) > 6 else ''}).")
        chosen.update(found)
    report = FreezeReport()
    for layer in layers:
        if layer.name in chosen:
            report.frozen_params += _params(layer.trainable_variables)
            layer.trainable = False
            report.layers.append(layer.name)
            report.batch_norm += int(type(layer).__name__ in ("BatchNormalization", "SyncBatchNormalization"))
    if chosen and not model.trainable_variables:
        raise ValueError(f"--freeze={','.join(patterns)} freezes every layer: nothing would train.")
    report.trainable_params = _params(model.trainable_variables)
    return report


def lr_multipliers(model, classifier: Sequence[str], multiplier: float) -> Optional[List[float]]:
    """One learning-rate multiplier per ``model.trainable_variables`` (in order): ``multiplier`` for the
    classifier layers' variables, 1 for the rest; None when ``multiplier`` is 1.

    Raises:
        ValueError: the classifier patterns name no layer, or the classifier does not train (frozen).
    """
    if multiplier == 1.0:
        return None
    head = [layer for layer in _weighted_layers(model) if _matches(layer.name, classifier)]
    if not head:
        raise ValueError(f"--head_lr_multiplier={multiplier:g}: the model's classifier patterns "
                         f"({', '.join(classifier)}) name no layer.")
    ids = {id(variable_value(v)) for layer in head for v in layer.trainable_variables}
    if not ids:
        names = ", ".join(layer.name for layer in head)
        raise ValueError(f"--head_lr_multiplier={multiplier:g}: the classifier ({names}) is frozen (--freeze).")
    return [float(multiplier) if id(variable_value(v)) in ids else 1.0 for v in model.trainable_variables]


@dataclass
class Tuning:
    """What :func:`prepare` decided: the optimizer's per-variable lr multipliers (None: all 1) and log lines."""

    lr_multipliers: Optional[List[float]] = None
    lines: List[str] = field(default_factory=list)


def prepare(model, finetune: FineTuneConfig, classifier: Sequence[str]) -> Tuning:
    """``--freeze`` and ``--head_lr_multiplier`` on a new model, before its optimizer is built."""
    tuning = Tuning()
    if finetune.freeze:
        report = freeze_layers(model, finetune.freeze, classifier)
        tuning.lines.append(report.describe(finetune.freeze))
    tuning.lr_multipliers = lr_multipliers(model, classifier, finetune.head_lr_multiplier)
    if tuning.lr_multipliers is not None:
        count = sum(m != 1.0 for m in tuning.lr_multipliers)
        tuning.lines.append(f"--head_lr_multiplier={finetune.head_lr_multiplier:g}: {count} classifier variables "
                            f"({', '.join(classifier)}) learn at lr x {finetune.head_lr_multiplier:g}")
    return tuning


def pretrained_kind(value: str) -> str:
    """``torchvision`` (the published weights), ``torch`` (a ``.pth`` file or URL) or ``checkpoint`` (TF)."""
    from weights.download import is_url

    if value == "torchvision":
        return "torchvision"
    if is_url(value) or value.lower().endswith((".pth", ".pt")):
        return "torch"
    return "checkpoint"


def load_pretrained(model, model_name: str, finetune: FineTuneConfig, recipe, num_classes: int,
                    log: Optional[Callable[[str], None]] = None) -> str:
    """Loads ``--pretrained`` into ``model``; returns the log line saying what was restored and kept fresh.

    Args:
        model: the new model (``num_classes`` outputs).
        model_name: its registered name (the torchvision layer names, the recipe's ``weights_url``).
        finetune: the fine-tuning settings (``pretrained``, ``restore_exclude``, ``weights_cache_dir``).
        recipe: the model's recipe (``classifier`` patterns, ``num_classes`` of the published weights).
        num_classes: the run's classes.
        log: receives download and conversion lines.

    Raises:
        FileNotFoundError, ValueError: the weights cannot be had or do not fit (nothing assigned).
    """
    source = finetune.pretrained
    kind = pretrained_kind(source)
    exclude = finetune.restore_exclude
    if kind == "checkpoint":
        from weights.checkpoint import checkpoint_num_classes, load_weights

        if exclude is None:
            try:
                theirs = checkpoint_num_classes(source)
            except ValueError:  # cannot tell: leave the classifier out, as a new classifier needs
                theirs = -1
            exclude = () if theirs == num_classes else tuple(recipe.classifier)
        report = load_weights(model, source, exclude=exclude)
        facts = [] if report.path == source else [f"checkpoint {report.path}"]
    else:
        import zoo
        from weights import torchvision as tv
        from weights.download import fetch

        url = getattr(recipe, "weights_url", None) if kind == "torchvision" else source
        if not url:
            raise ValueError(f"--pretrained=torchvision: {model_name} has no published torchvision weights (its recipe "
                             "names no weights_url); pass a .pth file or a TF checkpoint.")
        if exclude is None:
            if kind == "torchvision":
                theirs = recipe.num_classes
            else:  # the file's own classifier size (fetched into the cache once; read here, converted below)
                path = fetch(url, finetune.weights_cache_dir, log=log).path
                theirs = tv.classifier_size(tv.load_state_dict(path), recipe, zoo.get_torchvision_source(model_name))
            exclude = () if theirs == num_classes else tuple(recipe.classifier)
        report = tv.load_torchvision_weights(model, model_name, source=url, cache_dir=finetune.weights_cache_dir,
                                             exclude=exclude, log=log)
        facts = [url] if kind == "torchvision" else []
        if report.path != url:
            facts.append(f"cached at {report.path}")
        facts.append(f"sha256 {report.sha256[:12]}...")
        if report.from_cache:
            facts.append("converted weights from the cache")
    where = f" ({', '.join(facts)})" if facts else ""
    return (f"Initialised from --pretrained={source}{where}: {len(report.restored)} tensors restored, kept fresh: "
            f"{', '.join(report.skipped) or 'none'}")
