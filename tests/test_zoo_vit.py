"""ViT beyond the generic zoo tests: sizes, the embedding layers and their weight decay, initialisation."""

import fnmatch
import math

import numpy as np
import pytest
from torchvision_ref import import_torchvision

import zoo
from keras_compat import variable_path
from zoo.nets.vit import AttentionKernelInitializer, ClassToken, PositionEmbedding

SIZE = 32  # 2x2 patches + the class token: a cheap ViT-B/16


@pytest.fixture(scope="module")
def small_vit():
    return zoo.create_model("vit_b_16", num_classes=5, image_size=SIZE)


@pytest.mark.keras2
def test_input_size_must_be_a_multiple_of_the_patch_size():
    with pytest.raises(ValueError, match=r"multiple of 16, got --image_size=40; use --image_size=32"):
        zoo.create_model("vit_b_16", num_classes=5, image_size=40)


@pytest.mark.keras2
def test_embeddings_follow_the_input_size_and_take_decay_by_recipe(small_vit):
    token = small_vit.get_layer("class_token")
    position = small_vit.get_layer("encoder.pos_embedding")
    assert isinstance(token, ClassToken) and isinstance(position, PositionEmbedding)
    assert tuple(token.weights[0].shape) == (1, 1, 768)
    assert tuple(position.weights[0].shape) == (1, 1 + (SIZE // 16) ** 2, 768)
    patterns = zoo.get_recipe("vit_b_16").embedding_variables
    matched = [variable_path(v) for v in small_vit.trainable_variables
               if any(fnmatch.fnmatchcase(variable_path(v), p) for p in patterns)]
    assert matched == ["class_token/token", "encoder.pos_embedding/embedding"]


@pytest.mark.keras2
def test_class_token_is_prepended_and_its_output_classified():
    """The class token is the sequence's first row, and the head reads its output."""
    small_vit = zoo.create_model("vit_b_16", num_classes=5, image_size=SIZE)
    images = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    head = small_vit.get_layer("heads.head")
    head.set_weights([np.random.default_rng(1).normal(size=w.shape).astype(np.float32) for w in head.weights])
    token = small_vit.get_layer("class_token")
    before = np.asarray(small_vit(images, training=False))
    value = np.random.default_rng(2).normal(size=(1, 1, 768)).astype(np.float32)  # not constant: LN removes that
    token.set_weights(token.torch_weights({"": value}))
    after = np.asarray(small_vit(images, training=False))
    assert np.abs(after - before).max() > 1e-2 * np.abs(before).max()
    sequence = np.asarray(token(np.zeros((2, 4, 768), np.float32)))
    assert sequence.shape == (2, 5, 768)
    np.testing.assert_array_equal(sequence[:, :1], np.broadcast_to(value, (2, 1, 768)))
    np.testing.assert_array_equal(sequence[:, 1:], 0.0)


@pytest.mark.keras2
def test_attention_initializer_tells_input_and_output_kernels_apart():
    init = AttentionKernelInitializer(768, 12)
    qkv = np.asarray(init((768, 12, 64)))
    out = np.asarray(init((12, 64, 768)))
    assert np.abs(qkv).max() <= math.sqrt(6.0 / (4 * 768)) and np.abs(out).max() <= 1.0 / math.sqrt(768)
    assert abs(qkv.std() / math.sqrt(2.0 / (4 * 768)) - 1.0) < 0.02  # U(-b, b) has std b / sqrt(3)
    assert abs(out.std() / math.sqrt(1.0 / (3 * 768)) - 1.0) < 0.02
    with pytest.raises(ValueError, match="unexpected attention kernel shape"):
        init((768, 768))


def test_initialisation_is_torchvision_s(small_vit):
    """Fresh weights have torchvision's spread, torch's packed in_proj_weight compared with q/k/v."""
    import torch

    models = import_torchvision()
    torch.manual_seed(0)
    reference = dict(models.get_model("vit_b_16", weights=None, num_classes=5, image_size=SIZE).state_dict())
    prefix = "encoder.layers.encoder_layer_0"
    pairs = {
        "conv_proj/kernel": reference["conv_proj.weight"],
        "encoder.pos_embedding/embedding": reference["encoder.pos_embedding"],
        f"{prefix}.mlp.0/kernel": reference[f"{prefix}.mlp.0.weight"],
        f"{prefix}.mlp.3/kernel": reference[f"{prefix}.mlp.3.weight"],
        f"{prefix}.self_attention/query/kernel": reference[f"{prefix}.self_attention.in_proj_weight"][:768],
        f"{prefix}.self_attention/value/kernel": reference[f"{prefix}.self_attention.in_proj_weight"][1536:],
        f"{prefix}.self_attention/attention_output/kernel": reference[f"{prefix}.self_attention.out_proj.weight"],
    }
    ours = {variable_path(v): np.asarray(v) for v in small_vit.weights}
    for path, want in pairs.items():
        got = ours[path]
        assert got.size == want.numel(), path
        assert abs(got.std() / want.std().item() - 1.0) < 0.1, (path, got.std(), want.std().item())
    zeros = ["class_token/token", "heads.head/kernel", "heads.head/bias", f"{prefix}.self_attention/query/bias",
             f"{prefix}.self_attention/attention_output/bias", "conv_proj/bias"]
    for path in zeros:
        assert not ours[path].any(), path
    assert 0 < np.abs(ours[f"{prefix}.mlp.0/bias"]).max() < 1e-5  # N(0, 1e-6), as torchvision
