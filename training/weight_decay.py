"""Which variables take weight decay, and how much: the one selection the loss, the step and the logs use.

torchvision's reference recipes decay every parameter by ``--weight-decay`` unless told otherwise:
``--norm-weight-decay`` for the parameters of normalisation layers, ``--bias-weight-decay`` for every
parameter named ``bias`` (normalisation layers' included), ``--transformer-embedding-decay`` for
embeddings (class token, position embedding). The same precedence applies here: embedding, then bias,
then normalisation, then the general rate. The Ascend AlexNet recipe decays everything (biases
included), which is what the defaults (None: same as ``--weight_decay``) give.

Weight decay is the L2 term ``coefficient * l2_loss(v)`` (half the squared norm) in ``total_loss``;
its gradient ``coefficient * v`` is added to the variable's gradient by the training step.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from keras_compat import all_layers, variable_path, variable_value

__all__ = ["NORM_LAYERS", "DecayRule", "decay_coefficients", "describe", "l2_penalty"]

# Keras layer classes whose parameters count as normalisation parameters.
NORM_LAYERS = ("BatchNormalization", "SyncBatchNormalization", "LayerNormalization", "GroupNormalization")
_BIAS_NAMES = ("bias", "beta")  # Keras names a normalisation layer's bias "beta"


@dataclass(frozen=True)
class DecayRule:
    """The weight-decay settings of a run (its configuration, with the model recipe's embedding variables).

    Attributes:
        weight_decay: rate of every variable no other rule covers.
        norm_weight_decay: rate of normalisation layers' parameters; None: ``weight_decay``.
        bias_weight_decay: rate of biases (``bias``/``beta``); None: as the other rules say.
        embedding_weight_decay: rate of the recipe's embedding variables; None: ``weight_decay``.
        embedding_patterns: fnmatch patterns of embedding variable paths (the model's recipe).
    """

    weight_decay: float = 0.0
    norm_weight_decay: Optional[float] = None
    bias_weight_decay: Optional[float] = None
    embedding_weight_decay: Optional[float] = None
    embedding_patterns: Tuple[str, ...] = ()

    def rate(self, path: str, *, is_norm: bool) -> Tuple[float, str]:
        """(rate, kind) for the variable at ``path`` (``layer/variable``)."""
        if self.embedding_patterns and any(fnmatch.fnmatchcase(path, p) for p in self.embedding_patterns):
            rate = self.embedding_weight_decay
            return (self.weight_decay if rate is None else rate), "embedding"
        if self.bias_weight_decay is not None and path.rsplit("/", 1)[-1] in _BIAS_NAMES:
            return self.bias_weight_decay, "bias"
        if is_norm:
            rate = self.norm_weight_decay
            return (self.weight_decay if rate is None else rate), "norm"
        return self.weight_decay, "weight"


def _norm_variable_ids(model) -> set:
    ids = set()
    for layer in all_layers(model):
        if type(layer).__name__ in NORM_LAYERS:
            ids.update(id(variable_value(v)) for v in layer.weights)
    return ids


def decay_coefficients(model, rule: DecayRule, variables: Optional[Sequence] = None) -> List[float]:
    """The decay rate of each of ``variables`` (default: the model's trainable ones), in order."""
    variables = list(model.trainable_variables if variables is None else variables)
    norm_ids = _norm_variable_ids(model)
    return [rule.rate(variable_path(v), is_norm=id(variable_value(v)) in norm_ids)[0] for v in variables]


def describe(model, rule: DecayRule) -> Dict[str, Tuple[int, float]]:
    """kind -> (number of trainable variables, rate) for the log; rates that differ within a kind show the max."""
    norm_ids = _norm_variable_ids(model)
    summary: Dict[str, Tuple[int, float]] = {}
    for v in model.trainable_variables:
        rate, kind = rule.rate(variable_path(v), is_norm=id(variable_value(v)) in norm_ids)
        count, best = summary.get(kind, (0, 0.0))
        summary[kind] = (count + 1, max(best, rate))
    return summary


def l2_penalty(variables: Sequence, coefficients: Sequence[float]):
    """``sum(c * l2_loss(v))`` in float32 over the variables with a non-zero coefficient."""
    terms = [c * tf.nn.l2_loss(tf.cast(variable_value(v), tf.float32))
             for v, c in zip(variables, coefficients) if c]
    if not terms:
        return tf.constant(0.0, tf.float32)
    return tf.add_n(terms)
