"""Evaluation and prediction: validation metrics of checkpoints, the recipe's table, top-k predictions.

Owns ``--mode=evaluate`` (:mod:`evaluation.evaluator`), ``--mode=predict`` (:mod:`evaluation.predictor`)
and the evaluation table (:mod:`evaluation.eval_table`). May import ``training`` (logs, losses),
``runs``, ``weights``, ``datasets``, ``zoo``, ``backends`` and the top-level modules; never ``modes``
(which assembles runs from this package) or ``export``.
"""
