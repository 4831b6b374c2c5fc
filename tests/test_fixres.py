"""FixRes: training at --train_crop_size (the model's --image_size), evaluating at --val_crop_size, same weights.

torchvision's newer recipes train at 176 and evaluate at 224 (``--train-crop-size 176 --val-resize-size 232``,
``--val-crop-size``'s default 224); convolutional networks take any input size, so evaluation, prediction and
export build the network at the evaluation size and load the trained weights. ViT's position embedding fits
one size: refused in one line.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main

import zoo
from evaluation.predictor import evaluation_config, load_inference_model


def _resolved(*args):
    import main

    return main.resolve_command_line(list(args))[0]


def test_image_size_is_the_training_crop_and_the_higher_layer_wins():
    run = _resolved("--model=convnext_tiny")  # its recipe: torchvision's --train-crop-size 176 --val-resize-size 232
    config = run.config
    assert (config.model.image_size, config.augment.train_crop_size) == (176, 176)
    assert (config.augment.val_crop_size, config.augment.val_resize_size) == (224, 232)
    # --image_size on the command line is above the recipe's crop: it wins, and the crop follows it.
    smaller = _resolved("--model=convnext_tiny", "--image_size=128")
    assert (smaller.config.model.image_size, smaller.config.augment.train_crop_size) == (128, 128)
    assert smaller.sources["train_crop_size"] == "derived: --image_size"
    assert _resolved("--model=resnet50", "--train_crop_size=160").config.model.image_size == 160
    assert _resolved("--model=resnet50").config.augment.val_crop_size is None  # evaluation at the training size


def test_evaluation_builds_the_model_at_the_validation_crop():
    config = _resolved("--model=convnext_tiny").config
    evaluated = evaluation_config(config)
    assert (evaluated.model.image_size, evaluated.augment.train_crop_size) == (224, None)
    assert evaluated.augment.val_resize_size == 232 and evaluated.model.name == "convnext_tiny"
    plain = _resolved("--model=resnet50", "--image_size=128").config
    assert evaluation_config(plain) is plain  # nothing to change
    same = _resolved("--model=resnet50", "--image_size=128", "--val_crop_size=128").config
    assert evaluation_config(same) is same


def test_vit_is_refused_in_one_line(tmp_path):
    config = _resolved("--model=vit_b_16", "--train_crop_size=160", "--val_crop_size=224").config
    with pytest.raises(ValueError, match=r"vit_b_16 evaluates at the size it trained at") as error:
        evaluation_config(config)
    assert "\n" not in str(error.value)
    assert not zoo.get_recipe("vit_b_16").size_agnostic and zoo.get_recipe("resnet50").size_agnostic
    # main.py refuses before training anything (the run could never be evaluated).
    out = run_main("--model=vit_b_16", "--synthetic", "--image_size=32", "--val_crop_size=48", "--backend=cpu",
                   "--max_train_steps=1", f"--log_dir={tmp_path}", check=False)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]  # exit_codes.py: an error in one line
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--val_crop_size=48 differs from the training crop 32" in errors[0]


def test_prediction_loads_the_trained_weights_into_the_model_at_the_validation_size(tmp_path):
    train = _resolved("--model=resnet18", "--image_size=32", "--num_classes=5").config
    with tf.device("/cpu:0"):
        model = zoo.create_model("resnet18", num_classes=5, image_size=32)
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "model.ckpt-0"))
    config = _resolved("--model=resnet18", "--image_size=32", "--val_crop_size=48", "--num_classes=5",
                       f"--checkpoint_path={prefix}").config
    assert config.model.image_size == train.model.image_size == 32
    inference = load_inference_model(config)
    assert tuple(inference.model.input_shape) == (None, 48, 48, 3) and inference.config.image_size == 48
    assert inference.config.eval_resize == 55  # the recipe's 256 / 224, scaled to the 48-pixel crop
    for trained, loaded in zip(model.weights, inference.model.weights):
        np.testing.assert_array_equal(trained.numpy(), loaded.numpy())


@pytest.mark.slow
def test_train_at_one_size_evaluate_and_export_at_another(tmp_path):
    """A real run: train_and_evaluate evaluates the trained weights at the validation crop (the same numbers as
    --mode=evaluate afterwards, so the evaluation model got the weights), and the export takes that size."""
    run = tmp_path / "run"
    common = ("--model=mobilenet_v3_small", "--synthetic", "--backend=cpu", "--num_classes=10",
              "--synthetic_val_images=8", "--batch_size=4", "--eval_batch_size=4")
    out = run_main(*common, "--mode=train_and_evaluate", "--train_crop_size=32", "--val_crop_size=48",
                   "--val_resize_size=56", "--max_train_steps=2", "--iterations_per_loop=2", "--epochs_between_evals=0",
                   "--synthetic_train_images=8", f"--log_dir={run}")
    assert "image_size=32" in out.stdout
    during = [json.loads(line) for line in open(run / "metrics.jsonl") if '"eval"' in line][-1]
    run_main(*common, "--mode=evaluate", f"--checkpoint_dir={run}", f"--log_dir={tmp_path / 'eval'}")
    record = [json.loads(line) for line in open(tmp_path / "eval" / "metrics.jsonl") if '"eval"' in line][-1]
    assert record["step"] == during["step"] == 2
    assert record["loss"] == pytest.approx(during["loss"], rel=1e-5)
    export = tmp_path / "export"
    run_main(*common, "--mode=export", f"--checkpoint_dir={run}", f"--export_dir={export}")
    signature = tf.saved_model.load(str(export)).signatures["serving_images"]
    assert signature.structured_input_signature[1]["images"].shape.as_list()[1:] == [48, 48, 3]
    assert os.path.isdir(export)
