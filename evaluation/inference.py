"""Inference over image files: the float32 model, finding the images, batched predictions, the CSV.

``--mode=predict`` takes files, folders (searched recursively for ``.jpg``, ``.jpeg``, ``.png``, ``.bmp`` and
``.gif``, any case) and list files (one path per line, relative paths from the list's folder), runs them
through the run's evaluation transform (:func:`datasets.preprocessing.eval_image`, the same function as the
exported SavedModel's bytes signature) in batches, and writes one CSV row per image. An image that cannot be
read or decoded gets a row with its error instead of classes; it stops nothing.

Inference runs in float32 whatever precision the run trained in (:func:`float32_policy`), so predictions
equal the exported models' outputs.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from atomic import publish_file
from datasets import preprocessing
from evaluation.predictor import InferenceModel, Prediction, top_k
from keras_compat import keras

__all__ = ["IMAGE_EXTENSIONS", "PREDICTIONS_CSV", "FileResult", "csv_header", "default_csv_path", "find_images",
           "float32_policy", "predict_files", "write_predictions_csv"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
PREDICTIONS_CSV = "predictions.csv"
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")  # JPEG, PNG, GIF, BMP


@contextlib.contextmanager
def float32_policy() -> Iterator[None]:
    """Keras' global dtype policy is float32 inside the block (models built there compute and keep their
    weights in float32), and what it was afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _looks_like_image(path: str) -> bool:
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(8)
    return any(head.startswith(s) for s in _SIGNATURES)


def _folder_images(folder: str) -> List[str]:
    found = []
    for root, dirs, files in tf.io.gfile.walk(folder):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files) if _is_image_name(name)]
    return found


def _list_file(path: str) -> List[str]:
    base = os.path.dirname(path)
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"--image={path}: neither an image (.jpg, .jpeg, .png, .bmp, .gif) nor a text list of "
                         "image paths.") from None
    entries = [line.strip() for line in lines]
    return [e if os.path.isabs(e) or "://" in e else os.path.join(base, e) for e in entries
            if e and not e.startswith("#")]


def find_images(arguments: Sequence[str]) -> List[str]:
    """The image paths ``--image`` names, in order, each once.

    An argument is an image file (by its extension or its first bytes), a folder (every image file below it,
    sorted), or else a list file: one path per line (blank lines and ``#`` comments skipped), relative paths
    from the list's own folder; listed paths are taken as images, whether they exist or not (a missing one is
    reported as unreadable).

    Raises:
        FileNotFoundError: an argument names nothing.
        ValueError: a folder without images, or a list that is not text.
    """
    paths: List[str] = []
    for argument in arguments:
        if tf.io.gfile.isdir(argument):
            found = _folder_images(argument)
            if not found:
                raise ValueError(f"--image={argument}: no {', '.join(IMAGE_EXTENSIONS)} files in this folder or "
                                 "below it.")
            paths += found
        elif not tf.io.gfile.exists(argument):
            raise FileNotFoundError(f"--image: {argument}: no such file or folder.")
        elif _is_image_name(argument) or _looks_like_image(argument):
            paths.append(argument)
        else:
            paths += _list_file(argument)
    return list(dict.fromkeys(paths))


def default_csv_path(checkpoint: str) -> str:
    """``predictions.csv`` in the folder of the checkpoint predicted with (the run's directory)."""
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), PREDICTIONS_CSV)


@dataclass(frozen=True)
class FileResult:
    """One image's prediction, or why there is none.

    Attributes:
        path: the image file.
        top: (label, probability, name) from the most probable down; empty when ``error``.
        error: why the file could not be read or decoded; empty for a prediction.
    """

    path: str
    top: Tuple[Tuple[int, float, str], ...] = ()
    error: str = ""

    def prediction(self) -> Prediction:
        return Prediction(self.path, self.top)


def _first_line(e: Exception) -> str:
    """The first line of an error, without TensorFlow's ``{{function_node ...}}`` prefix and ``[Op:...]`` tail."""
    message = (getattr(e, "message", None) or str(e) or type(e).__name__).strip().splitlines()[0]
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:\w+\]$", "", message)


class _Transform:
    """The evaluation transform of one file, traced once: uint8 [size, size, 3] or an error message."""

    def __init__(self, config: preprocessing.PreprocessConfig) -> None:
        self._fn = tf.function(lambda encoded: preprocessing.eval_image(encoded, config),
                               input_signature=[tf.TensorSpec([], tf.string)])

    def __call__(self, path: str):
        if not tf.io.gfile.exists(path):
            return None, "no such file"
        try:
            encoded = tf.io.read_file(path)
        except (tf.errors.OpError, OSError) as e:
            return None, f"cannot read it ({_first_line(e)})"
        try:
            return self._fn(encoded).numpy(), ""
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.OutOfRangeError,
                tf.errors.FailedPreconditionError) as e:
            return None, f"cannot decode it as an image ({_first_line(e)})"


def predict_files(inference: InferenceModel, paths: Iterable[str], *, batch_size: int, k: int,
                  threads: int = 4) -> Iterator[FileResult]:
    """The top-``k`` of every file in ``paths``, in order, in batches of ``batch_size`` through the model.

    Files are read and transformed on ``threads`` threads while the model runs; an unreadable one yields
    a result with its ``error``.
    """
    transform = _Transform(inference.config)
    config = inference.config
    k = min(k, inference.num_classes)

    @tf.function(input_signature=[tf.TensorSpec([None, config.image_size, config.image_size, 3], tf.uint8)])
    def probabilities(images):
        logits = tf.cast(inference.model(preprocessing.normalize_for(images, config), training=False), tf.float32)
        return tf.nn.softmax(logits)

    paths = list(paths)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            done = list(pool.map(transform, chunk))
            good = [i for i, (image, _) in enumerate(done) if image is not None]
            probs = probabilities(np.stack([done[i][0] for i in good])).numpy() if good else None
            rows = {i: FileResult(chunk[i], top_k(probs[j], inference.names, k)) for j, i in enumerate(good)}
            for i, path in enumerate(chunk):
                yield rows.get(i) or FileResult(path, error=done[i][1])


def csv_header(k: int) -> List[str]:
    """``path``, then ``class_i``, ``name_i``, ``probability_i`` for ranks 1..k, then ``error``."""
    header = ["path"]
    for rank in range(1, k + 1):
        header += [f"class_{rank}", f"name_{rank}", f"probability_{rank}"]
    return header + ["error"]


def write_predictions_csv(path: str, results: Iterable[FileResult], k: int,
                          on_row: Optional[Callable[[FileResult], None]] = None) -> int:
    """Writes ``results`` as CSV rows (:func:`csv_header`) to ``path`` atomically; returns the row count.

    Probabilities are written with float32's shortest exact decimal; an unreadable file's class columns are
    empty and its ``error`` says why.
    """
    count = 0
    with publish_file(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(csv_header(k))
        for result in results:
            cells: List[object] = [result.path]
            for rank in range(k):
                if rank < len(result.top):
                    label, probability, name = result.top[rank]
                    cells += [label, name, str(np.float32(probability))]
                else:
                    cells += ["", "", ""]
            writer.writerow(cells + [result.error])
            count += 1
            if on_row is not None:
                on_row(result)
    return count
