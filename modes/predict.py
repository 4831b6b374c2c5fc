"""``--mode=predict``: the top-k classes of image files, folders or list files, with the run's own model and
transform, in batches, into a CSV; a short report on stdout."""

from __future__ import annotations

from typing import List

from backends.base import Backend
from evaluation.inference import (
    FileResult,
    default_csv_path,
    find_images,
    float32_policy,
    predict_files,
    write_predictions_csv,
)
from evaluation.predictor import format_predictions, load_inference_model
from run_config import Resolved
from training.log import TrainLog

__all__ = ["PRINT_LIMIT", "predict"]

# Images whose top-k is printed (all are in the CSV), and unreadable files named on stdout.
PRINT_LIMIT = 20


def predict(run: Resolved, backend: Backend) -> List[FileResult]:
    """Predicts every image ``--image`` names, writes ``--predictions_csv`` and returns the results.

    Raises:
        ValueError: no ``--image``, or a folder without images (one line).
        FileNotFoundError: an ``--image`` argument that names nothing.
    """
    config = run.config
    arguments = [p for p in config.predict.image if p]
    if not arguments:
        raise ValueError("--mode=predict needs images: pass --image=PATH[,PATH...] (image files, folders or list "
                         "files).")
    paths = find_images(arguments)
    if not backend.is_chief:
        return []
    with float32_policy():  # the exported models' precision, whatever the run trained in
        inference = load_inference_model(config, backend)
    log = TrainLog(None)
    csv_path = config.predict.predictions_csv or default_csv_path(inference.checkpoint)
    k = min(config.predict.top_k, inference.num_classes)
    source = (f"names from {inference.label_map_path}" if inference.label_map_path
              else "no label map found: classes shown by index (pass --label_map=FILE for names)")
    log.info(f"Predictions of {inference.checkpoint} ({config.model.name}, {inference.num_classes} classes; {source})")
    results: List[FileResult] = []
    unreadable: List[FileResult] = []

    def report(result: FileResult) -> None:
        results.append(result)
        if result.error:
            unreadable.append(result)
            if len(unreadable) <= PRINT_LIMIT:
                log.info(f"{result.path}: unreadable: {result.error}")
        elif len(results) - len(unreadable) <= PRINT_LIMIT:
            for line in format_predictions([result.prediction()]):
                log.info(line)

    batch_size = config.evaluation.eval_batch_size or config.data.batch_size
    write_predictions_csv(csv_path, predict_files(inference, paths, batch_size=batch_size, k=k), k, on_row=report)
    shown = min(len(results) - len(unreadable), PRINT_LIMIT)
    if shown < len(results) - len(unreadable):
        log.info(f"... the top-{k} of {len(results) - len(unreadable) - shown} more images are in the CSV")
    if len(unreadable) > PRINT_LIMIT:
        log.info(f"... and {len(unreadable) - PRINT_LIMIT} more unreadable files (the CSV's error column)")
    log.info(f"Predicted {len(results) - len(unreadable)} of {len(results)} images ({len(unreadable)} unreadable) "
             f"-> {csv_path}")
    return results
