"""ResNet family specifics the generic zoo tests do not cover: v1.5 strides, groups, zero_init_residual, flag files."""


import numpy as np
import pytest

import zoo


def test_bottleneck_strides_on_its_3x3_and_resnext_groups_it():
    model = zoo.create_model("resnext50_32x4d", num_classes=10, image_size=64)
    assert tuple(model.get_layer("layer2.0.conv1").strides) == (1, 1)
    assert tuple(model.get_layer("layer2.0.conv2").strides) == (2, 2)  # v1.5: the stride is on the 3x3
    assert tuple(model.get_layer("layer2.0.downsample.0").strides) == (2, 2)
    assert model.get_layer("layer2.0.conv2").groups == 32
    assert model.get_layer("layer1.0.conv2").kernel.shape == (3, 3, 4, 128)  # 32 groups of 4 channels


@pytest.mark.parametrize("name,last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_zeroes_only_each_branch_s_last_batch_norm_scale(name, last_bn):
    model = zoo.create_model(name, num_classes=10, image_size=64, zero_init_residual=True)
    for layer in model.layers:
        if "BatchNormalization" not in type(layer).__name__:
            continue
        gamma = np.asarray(layer.gamma)
        want = 0.0 if layer.name.endswith(f".{last_bn}") else 1.0
        assert (gamma == want).all(), layer.name
    default = zoo.create_model(name, num_classes=10, image_size=64)
    assert (np.asarray(default.get_layer(f"layer1.0.{last_bn}").gamma) == 1.0).all()
