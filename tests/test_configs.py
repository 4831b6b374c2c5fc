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
