"""Deployment formats of a trained model: SavedModel signatures, TFLite, ONNX and ``.keras``.

Owns ``--mode=export``. May import ``evaluation`` (the inference model and its label map), ``weights``,
``runs``, ``datasets`` (the evaluation transforms inside the graph), ``zoo`` and the top level.
"""
