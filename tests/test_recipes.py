"""Each zoo model's registered recipe against the published recipe it cites, field by field.

The references are transcribed in ``tests/data/reference_recipes.json``: torchvision's commands (its
``references/classification/README.md``) with ``train.py``'s defaults, timm's EfficientNet-B0 command, the
Inception v3 paper with TensorFlow's Inception code, the DenseNet authors' fb.resnet.torch command, the Ascend
AlexNet recipe and pytorch/vision#912. A difference between a recipe and its reference passes only when the
table lists it with a reason: not expressible (no setting can say it), a deliberate deviation, or a value the
source does not publish. Listed differences that no longer differ, and "not expressible" values that a setting
can now express, fail, so the table and the recipes cannot drift. The learning-rate schedule is compared as
numbers: torchvision's with ``torch.optim.lr_scheduler`` built as its ``train.py`` builds it.
"""

import json
import math
import os

import numpy as np
import pytest
from conftest import ROOT

import run_config
import zoo
from run_config.fields import SettingError, coerce

DATA = json.load(open(os.path.join(ROOT, "tests", "data", "reference_recipes.json"), encoding="utf-8"))
MODELS = sorted(DATA["models"])
TV_DEFAULTS = DATA["torchvision_train_py_defaults"]
# Keys of the table that are not settings but what the run makes of them (see _effective).
_DERIVED = {"train_crop": "image_size", "eval_crop": "val_crop_size", "eval_resize_to": "val_resize_size"}
_LISTS = ("not_expressible", "deviations", "unpublished")


def _config(model: str):
    import main

    return main.resolve_command_line([f"--model={model}"])[0].config


def _effective(config) -> dict:
    """Every setting of the resolved ``--model=NAME`` run, and the sizes and filters it trains and evaluates with."""
    values = {s.flag: run_config.value_of(config, s.flag) for s in run_config.SETTINGS.values()}
    recipe = zoo.get_recipe(config.model.name)
    crop = config.augment.val_crop_size or config.model.image_size
    interpolation = config.augment.interpolation or recipe.interpolation
    values.update(train_crop=config.model.image_size, eval_crop=crop,
                  eval_resize_to=config.augment.val_resize_size or recipe.scaled(crop).eval_resize,
                  interpolation=interpolation, train_interpolation=config.augment.train_interpolation or interpolation,
                  min_crop_area=config.augment.min_crop_area or 0.08)
    return values


def _from_torchvision(args: dict) -> dict:
    """A torchvision command's arguments (train.py's defaults for the rest) in this project's settings, as
    docs/training_stack.md maps them."""
    a = dict(TV_DEFAULTS, **args)
    world = a["nproc_per_node"] * a["nnodes"]
    s = dict(batch_size=a["batch_size"], lr_reference_batch=a["batch_size"] * world, lr=a["lr"],
             max_epochs=a["epochs"], weight_decay=a["weight_decay"], norm_weight_decay=a["norm_weight_decay"],
             bias_weight_decay=a["bias_weight_decay"], embedding_weight_decay=a["transformer_embedding_decay"],
             label_smoothing=a["label_smoothing"], mixup_alpha=a["mixup_alpha"], cutmix_alpha=a["cutmix_alpha"],
             clip_grad_norm=a["clip_grad_norm"] or 0.0, random_erase=a["random_erase"],
             auto_augment=a["auto_augment"] or "none", model_ema=a["model_ema"], ra_sampler=a["ra_sampler"],
             warmup_epochs=a["lr_warmup_epochs"], lr_schedule_unit="epoch", train_crop=a["train_crop_size"],
             eval_crop=a["val_crop_size"], eval_resize_to=a["val_resize_size"], eval_resize="shorter",
             interpolation=a["interpolation"], train_interpolation=a["interpolation"], crop_sampler="torchvision",
             min_crop_area=0.08, color_jitter=[0, 0, 0, 0], lighting_std=0.0, distort_color="none")
    opt = a["opt"].lower()
    if opt.startswith("sgd"):  # torch.optim.SGD(momentum=args.momentum, nesterov="nesterov" in opt)
        s.update(optimizer="momentum", momentum=a["momentum"], use_nesterov="nesterov" in opt)
    elif opt == "rmsprop":  # torch.optim.RMSprop(momentum=args.momentum, eps=0.0316, alpha=0.9)
        s.update(optimizer="rmsprop_torch", momentum=a["momentum"], rmsprop_decay=0.9, optimizer_epsilon=0.0316)
    elif opt == "adamw":  # torch.optim.AdamW's defaults
        s.update(optimizer="adamw", adam_beta1=0.9, adam_beta2=0.999, optimizer_epsilon=1e-8)
    else:
        raise AssertionError(f"train.py has no --opt {opt}")
    if a["random_erase"]:
        s["random_erase_value"] = "zero"  # RandomErasing(value=0)
    if a["auto_augment"] == "ra":
        s.update(ra_num_ops=2, ra_magnitude=a["ra_magnitude"])  # RandAugment(num_ops=2, magnitude=...)
    if a["model_ema"]:
        s.update(model_ema_steps=a["model_ema_steps"], model_ema_decay=a["model_ema_decay"], model_ema_adjust=True,
                 model_ema_warmup="lr_warmup")
    if a["ra_sampler"]:
        s["ra_reps"] = a["ra_reps"]
    if a["lr_warmup_epochs"]:
        s.update(lr_warmup_method=a["lr_warmup_method"], lr_warmup_decay=a["lr_warmup_decay"],
                 lr_decay_after_warmup=True)  # SequentialLR: the decay starts after the warm-up
    return s


def _reference(model: str) -> dict:
    entry = DATA["models"][model]
    return _from_torchvision(entry["args"]) if entry["source"] == "torchvision" else dict(entry["settings"])


def _same(want, got) -> bool:
    if isinstance(want, (list, tuple)) or isinstance(got, (list, tuple)):
        return got is not None and want is not None and len(want) == len(got) and all(
            _same(w, g) for w, g in zip(want, got))
    if isinstance(want, float) or isinstance(got, float):
        return want is not None and got is not None and math.isclose(float(want), float(got), rel_tol=1e-9)
    return want == got


def _expressible(key: str, value) -> bool:
    """Whether a setting can hold the reference's value (a description of something else is not a value)."""
    flag = _DERIVED.get(key, key)
    if flag not in run_config.SETTINGS or value is None:
        return False
    setting = run_config.SETTINGS[flag]
    try:
        coerce(setting.cls, setting.field, value)
    except (SettingError, TypeError, ValueError):
        return False
    return True


def test_every_zoo_model_has_a_transcribed_reference():
    assert MODELS == sorted(zoo.list_models(builtin_only=True))
    for model, entry in DATA["models"].items():
        assert entry["source"] in DATA["sources"], model
        for listed in _LISTS:
            assert all(isinstance(reason, str) and len(reason) > 20 for reason in entry.get(listed, {}).values())


@pytest.mark.parametrize("model", MODELS)
def test_recipe_matches_its_reference_field_by_field(model):
    entry, want = DATA["models"][model], _reference(model)
    got = _effective(_config(model))
    unknown = sorted(k for k in want if k not in got)
    assert not unknown, f"{model}: the table names no setting {unknown}"
    differ = {k for k in want if not _same(want[k], got[k])}
    listed = {k: listed for listed in _LISTS for k in entry.get(listed, {})}
    unexplained = {k: (want[k], got[k]) for k in sorted(differ - set(listed))}
    assert not unexplained, f"{model}: recipe differs from {entry['source']}'s (reference, recipe): {unexplained}"
    stale = sorted(set(listed) - differ)
    assert not stale, f"{model}: {stale} listed as differences but the recipe matches the reference: unlist them"
    for key in entry.get("not_expressible", {}):
        assert not _expressible(key, want[key]), f"{model}: --{key}={want[key]} is expressible now: set it"
    for key in entry.get("deviations", {}):
        assert _expressible(key, want[key]), f"{model}: {key} is not expressible: list it under not_expressible"
    for key in entry.get("unpublished", {}):
        assert want[key] is None, f"{model}: {key} is listed as unpublished but the table gives a value"


def _torch_schedule(args: dict) -> list:
    """The lr of every epoch under train.py's scheduler for ``args`` (its defaults for the rest), from torch."""
    torch = pytest.importorskip("torch")
    a = dict(TV_DEFAULTS, **args)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=a["lr"])
    sched = a["lr_scheduler"]
    if sched == "steplr":
        main = torch.optim.lr_scheduler.StepLR(optimizer, step_size=a["lr_step_size"], gamma=a["lr_gamma"])
    elif sched == "cosineannealinglr":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=a["epochs"] - a["lr_warmup_epochs"],
                                                          eta_min=a["lr_min"])
    else:
        main = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=a["lr_gamma"])
    scheduler = main
    if a["lr_warmup_epochs"] > 0:
        kind = {"linear": torch.optim.lr_scheduler.LinearLR, "constant": torch.optim.lr_scheduler.ConstantLR}
        warm = (kind["linear"](optimizer, start_factor=a["lr_warmup_decay"], total_iters=a["lr_warmup_epochs"])
                if a["lr_warmup_method"] == "linear"
                else kind["constant"](optimizer, factor=a["lr_warmup_decay"], total_iters=a["lr_warmup_epochs"]))
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[warm, main],
                                                          milestones=[a["lr_warmup_epochs"]])
    lrs = []
    for _ in range(a["epochs"]):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _published_schedule(entry: dict, config, steps_per_epoch: int) -> tuple:
    """(steps, lrs) of a non-torchvision reference's schedule, from its source's formula."""
    kind, lr, epochs = entry["schedule"]["kind"], config.schedule.lr, int(config.schedule.max_epochs)
    if kind == "ascend":  # per-step linear warm-up, then cosine per epoch counted from step 0 (docs/reference.md)
        warmup = int(config.schedule.warmup_epochs * steps_per_epoch)
        steps = np.arange(epochs * steps_per_epoch)
        cosine = lr * (1 + np.cos(np.pi * (steps // steps_per_epoch) / epochs)) / 2
        return steps, np.where(steps < warmup, lr * (steps + 1) / warmup, cosine)
    epoch = np.arange(epochs)
    if kind == "step":  # timm's StepLRScheduler, TF's staircase exponential_decay, fb.resnet.torch's 0.1^floor
        s = entry["schedule"]
        lrs = lr * s["gamma"] ** np.floor(epoch / s["step_epochs"])
        if s.get("warmup_epochs"):  # timm: warmup_lr_init + t * (lr - warmup_lr_init) / warmup_t
            w = s["warmup_epochs"]
            lrs = np.where(epoch < w, s["warmup_lr"] + epoch * (lr - s["warmup_lr"]) / w, lrs)
        return epoch * steps_per_epoch, lrs
    assert kind == "sgdr", kind
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=int(config.schedule.lr_restart_epochs), T_mult=int(config.schedule.lr_restart_mult),
        eta_min=config.schedule.lr_min)
    lrs = []
    for _ in epoch:
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return epoch * steps_per_epoch, np.array(lrs)


@pytest.mark.parametrize("model", MODELS)
def test_learning_rate_schedule_is_the_reference_s(model):
    """The recipe's schedule, epoch by epoch (the Ascend one step by step), equals the reference's."""
    import tensorflow as tf

    from training.schedules import schedule_from_config

    entry, config, steps_per_epoch = DATA["models"][model], _config(model), 4
    schedule = schedule_from_config(config.schedule, config.schedule.lr, steps_per_epoch)
    if entry["source"] == "torchvision":
        want = np.array(_torch_schedule(entry["args"]))
        steps = np.arange(len(want)) * steps_per_epoch
    else:
        steps, want = _published_schedule(entry, config, steps_per_epoch)
    got = np.asarray(schedule(tf.constant(steps, tf.int64)), np.float64)
    assert len(got) == config.schedule.max_epochs * (steps_per_epoch if entry["source"] == "ascend" else 1)
    # float32 arithmetic: relative to each value, and to the peak near the cosine's end at 0
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7 * float(np.max(want)), err_msg=model)


@pytest.mark.parametrize("model", MODELS)
def test_recipe_names_its_reference_weights_and_command(model):
    entry, recipe = DATA["models"][model], zoo.get_recipe(model)
    assert recipe.reference and recipe.reference_weights and recipe.reference_top1, model
    if entry["weights"]:
        assert recipe.reference_weights == entry["weights"] and entry["weights"] in recipe.reference
    else:  # the Ascend recipe: its README's table, no published weights
        assert "Ascend" in recipe.reference and "Ascend" in recipe.reference_weights
    if entry["source"] == "torchvision":
        assert f"--model {model}" in recipe.reference and "references/classification/README.md" in recipe.reference


def _torchvision_models():
    try:
        from tools.torchvision_models import import_models

        return import_models()
    except ImportError as e:
        pytest.skip(f"torchvision is not installed: {e}")


@pytest.mark.parametrize("model", [m for m in MODELS if DATA["models"][m]["weights"]])
def test_reference_weights_are_torchvision_s_published_entry(model):
    """The weights the recipe names exist in torchvision, with the registered url, accuracy and evaluation
    transform, and their meta's recipe is the reference the table transcribes."""
    models = _torchvision_models()
    entry, recipe = DATA["models"][model], zoo.get_recipe(model)
    enum, member = entry["weights"].rsplit(".", 1)
    weights = getattr(getattr(models, enum), member)
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    assert (weights.url, metrics["acc@1"], metrics["acc@5"]) == (
        recipe.weights_url, recipe.reference_top1, recipe.reference_top5)
    transform = weights.transforms()
    assert (transform.resize_size[0], transform.crop_size[0]) == (recipe.eval_resize, recipe.input_size)
    assert transform.interpolation.value == recipe.interpolation
    assert weights.meta["recipe"] == entry["recipe_url"]


def test_docs_name_every_difference_left():
    """docs/zoo.md's table of approximations names each model whose recipe differs from its reference."""
    text = open(os.path.join(ROOT, "docs", "zoo.md"), encoding="utf-8").read()
    section = text.split("### What the recipes approximate", 1)[1].split("\n## ", 1)[0]
    for model, entry in DATA["models"].items():
        keys = [k for listed in _LISTS for k in entry.get(listed, {})]
        if keys or entry.get("notes"):
            assert f"`{model}`" in section, f"docs/zoo.md does not list {model}'s differences"
        for key in keys:
            assert key in section, f"docs/zoo.md does not name {model}'s {key}"
    for note in DATA["global_notes"]:
        assert note in section, f"docs/zoo.md does not say {note}"
