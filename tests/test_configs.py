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


def _values(flagfile: str):
    import main

    flags = main.FLAGS
    try:
        flags(["main.py", f"--flagfile={os.path.join(ROOT, 'configs', flagfile)}"])
        return {name: flags[name].value for name in flags}
    finally:
        flags.unparse_flags()


@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_flag_file_states_its_model_s_registered_recipe(flagfile):
    """A flag file and the recipe registered with its model say the same (the two cannot drift apart).

    Its learning rate may belong to another global batch (the Ascend recipe's 1-device file: 0.015 for 256
    images) if it is the recipe's rate scaled linearly, the rule the trainer applies.
    """
    values = _values(flagfile)
    recipe = zoo.get_recipe(values["model"])
    assert recipe.hparams and recipe.lr_reference_batch, values["model"]
    for key, want in recipe.hparams.items():
        got = values[key]
        if key in ("lr", "batch_size"):
            continue
        if isinstance(want, (list, tuple)):
            assert [float(v) for v in got] == [float(v) for v in want], key
        else:
            assert got == want, key
    global_batch = values["batch_size"] * values["rank_size"]
    assert values["lr"] / global_batch == pytest.approx(recipe.hparams["lr"] / recipe.lr_reference_batch)
