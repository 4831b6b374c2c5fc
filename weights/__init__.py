"""Model weights from files: TensorFlow checkpoints and torchvision's published weights.

Owns loading weights into a model by name, whatever else a checkpoint holds
(:mod:`weights.checkpoint`); reading PyTorch ``.pth`` files without PyTorch, through a restricted
unpickler that accepts tensor rebuilds only (:mod:`weights.torch_file`); downloading into a cache with
torchvision's SHA-256 file-name check (:mod:`weights.download`); and converting torchvision's layers to
the zoo's (:mod:`weights.torchvision`). May import ``runs`` (the checkpoint layout), ``zoo`` and the top
level; nothing above it (training, evaluation, export, modes).
"""
