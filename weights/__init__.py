"""Model weights from files: TensorFlow checkpoints and torchvision's published weights.

Owns loading weights into a model by name, whatever else a checkpoint holds
(:mod:`weights.checkpoint`). May import ``runs`` (the checkpoint layout), ``zoo`` and the top level;
nothing above it (training, evaluation, export, modes).
"""
