"""Every recipe flag file in configs/ parses and trains a few steps on synthetic data (one device)."""

import os

import pytest
from conftest import ROOT, run_main

import zoo

FLAGFILES = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith("_imagenet.flags")
                   or f.endswith("_8p.flags") or f.endswith("_1p.flags"))


def _model(flagfile: str) -> str:
    lines = open(os.path.join(ROOT, "configs", flagfile), encoding="utf-8").read().splitlines()
    return next(line.split("=", 1)[1].strip() for line in lines if line.startswith("--model="))


@pytest.mark.slow
@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_flag_file_trains_on_synthetic_data(flagfile, tmp_path):
    recipe = zoo.get_recipe(_model(flagfile))
    size = max(recipe.min_input_size, 64)
    size -= size % recipe.size_multiple
    out = run_main(f"--flagfile=configs/{flagfile}", "--synthetic", "--rank_size=1", "--backend=cpu",
                   "--max_train_steps=2", "--batch_size=2", f"--image_size={size}", "--save_summary_steps=1",
                   "--iterations_per_loop=1", "--nodo_checkpoint", f"--log_dir={tmp_path}")
    assert sum(line.startswith("step:") for line in out.stdout.splitlines()) == 2, out.stdout[-2000:]


def _values(flagfile: str, present: bool = False):
    """flag name -> typed value after resolving ``flagfile`` (with ``present``: only the flags it sets)."""
    import main
    import run_config

    layers, _ = main.command_line_layers([f"--flagfile={os.path.join(ROOT, 'configs', flagfile)}"])
    resolved = run_config.resolve(layers, recipe_of=zoo.recipe_settings)
    names = set(layers[0].values) if present else {s.flag for s in run_config.SETTINGS.values()}
    return {name: run_config.value_of(resolved.config, name) for name in names}


# Flags a flag file may set that its model's recipe leaves out: the run's layout and logging and the model it
# names. Everything else a flag file sets is a recipe setting (the weight average, the crop sizes, the
# repeated-augmentation sampler included): --model=NAME alone trains with the reference recipe.
_LAYOUT = frozenset({"model", "mode", "rank_size", "iterations_per_loop", "save_summary_steps",
                     "save_checkpoints_steps", "epochs_between_evals", "max_checkpoint_to_save"})


def _header(flagfile: str) -> str:
    lines = open(os.path.join(ROOT, "configs", flagfile), encoding="utf-8").read().splitlines()
    return "\n".join(line for line in lines if line.startswith("#"))


@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_every_training_setting_of_a_flag_file_is_in_its_model_s_recipe(flagfile):
    """``--model=NAME`` alone trains with everything the model's flag file sets (optimizer, augmentation, EMA, ...)."""
    set_here = _values(flagfile, present=True)
    settings = zoo.recipe_settings(set_here["model"])
    missing = sorted(set(set_here) - _LAYOUT - set(settings))
    assert not missing, f"{flagfile} sets {missing}, which the model's registered recipe lacks"


@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_flag_file_states_its_model_s_registered_recipe(flagfile):
    """A flag file and the recipe registered with its model say the same (the two cannot drift apart).

    Its learning rate may belong to another global batch (the Ascend recipe's 1-device file: 0.015 for 256
    images) if it is the recipe's rate scaled linearly, the rule the trainer applies.
    """
    values = _values(flagfile)
    recipe = zoo.get_recipe(values["model"])
    assert recipe.hparams and recipe.lr_reference_batch and recipe.reference, values["model"]
    for key, want in zoo.recipe_settings(values["model"]).items():
        got = values[key]
        if key in ("lr", "batch_size", "lr_reference_batch"):
            continue
        if isinstance(want, (list, tuple)):
            assert [float(v) for v in got] == [float(v) for v in want], key
        else:
            assert got == want, key
    # The file states its lr for its own reference batch: the same rate per image as the recipe's.
    assert values["lr"] / values["lr_reference_batch"] == pytest.approx(
        recipe.hparams["lr"] / recipe.lr_reference_batch)


@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_a_flag_file_overrides_its_recipe_only_for_a_reason_its_header_states(flagfile):
    """What a file sets that differs from the recipe (or that is the run's layout beyond logging) is named in its
    header, with the reason; so is the device count, which the files leave to the user except the 8-NPU one."""
    values = _values(flagfile, present=True)
    settings = zoo.recipe_settings(values["model"])
    header = _header(flagfile)
    overrides = sorted(k for k, v in values.items() if k in settings and not _same(v, settings[k]))
    overrides += sorted(k for k in values if k in ("rank_size", "max_checkpoint_to_save"))
    for key in overrides:
        assert f"--{key}" in header, f"{flagfile} overrides --{key} without saying so in its header"
    assert "--lr_reference_batch" in header or "lr_reference_batch" not in values, flagfile
    assert "--rank_size=8 --batch_size" not in header, f"{flagfile}: the file leaves the device count to the user"


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return [float(v) for v in a] == [float(v) for v in b]
    return a == b
