"""torchvision weights (a ``state_dict`` file or its URL) -> a TF checkpoint of the same zoo model, without PyTorch.

    python tools/convert_torchvision.py --model=resnet50 --state_dict=resnet50-0676ba61.pth --output_dir=weights/r50
    python tools/convert_torchvision.py --model=resnet50 --output_dir=weights/r50 \\
        --state_dict=https://download.pytorch.org/models/resnet50-0676ba61.pth
    python main.py --mode=evaluate --model=resnet50 --checkpoint_dir=weights/r50 --data_dir=/data/imagenet

A thin command line over :mod:`weights.torchvision`, which holds the conversion rules. A URL is downloaded
into the weights cache (``--cache_dir``, else ``$MODELZOO_CACHE``, else ``~/.cache/modelzoo/weights``) and,
like a local file, checked against the SHA-256 prefix in its name (``resnet50-0676ba61.pth``). The file is
read by :mod:`weights.torch_file`, a restricted reader that loads tensors and plain containers and refuses
any other pickled object; PyTorch is not needed. The classifier keeps the file's number of classes. The
output is ``<output_dir>/model.ckpt-0`` (step 0), published atomically: ``output_dir`` either holds a
complete checkpoint or does not exist.

The conversion functions are re-exported here for the callers that import them from this tool.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from weights.download import DownloadError, HashMismatchError, fetch  # noqa: E402
from weights.torchvision import (  # noqa: E402
    ConversionError,
    assign_torch_weights,
    classifier_size,
    load_state_dict,
    torch_layer_weights,
)

__all__ = ["ConversionError", "assign_torch_weights", "convert", "load_state_dict", "main", "torch_layer_weights"]


def convert(state_dict_path: str, output_dir: str, model_name: str = "alexnet", cache_dir: Optional[str] = None) -> str:
    """Converts the file (a path or URL) and writes ``<output_dir>/model.ckpt-0``; returns the checkpoint prefix.

    Raises:
        FileExistsError: ``output_dir`` exists and is not empty (nothing is overwritten).
        FileNotFoundError: no such file.
        HashMismatchError, DownloadError: the file could not be had (nothing cached).
        ConversionError: not a weights-only file, or the weights do not fit ``model_name``.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise FileExistsError(f"--output_dir={output_dir} already exists and is not empty; pass a new directory.")
    fetched = fetch(state_dict_path, cache_dir, log=lambda line: print(line, flush=True))
    state = load_state_dict(fetched.path)

    import tensorflow as tf

    import zoo
    from atomic import publish_directory

    source = zoo.get_torchvision_source(model_name)
    model = zoo.create_model(model_name, num_classes=classifier_size(state, zoo.get_recipe(model_name), source))
    assign_torch_weights(model, state, source)
    with publish_directory(output_dir) as tmp:
        tf.train.Checkpoint(model=model).write(os.path.join(tmp, "model.ckpt-0"))
    return os.path.join(output_dir, "model.ckpt-0")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="alexnet", help="Zoo model the weights are for (python main.py --list).")
    p.add_argument("--state_dict", required=True,
                   help="torchvision weights: a .pth file or its URL, e.g. resnet50-0676ba61.pth.")
    p.add_argument("--output_dir", required=True, help="New directory for the TF checkpoint model.ckpt-0.")
    p.add_argument("--cache_dir", default=None, help="Where downloaded weights are kept (default: $MODELZOO_CACHE "
                   "or ~/.cache/modelzoo/weights).")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    import registry

    try:
        model_name = registry.MODELS.entry(args.model).name
        prefix = convert(args.state_dict, args.output_dir, model_name, args.cache_dir)
    except (FileNotFoundError, FileExistsError, ConversionError, HashMismatchError, DownloadError,
            registry.RegistryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {prefix} (model {model_name}).")
    print(f"Evaluate it: python main.py --mode=evaluate --model={model_name} --checkpoint_path={prefix} "
          "--data_dir=/path/to/imagenet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
