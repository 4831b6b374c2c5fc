"""A small model with batch norm for the --sync_bn tests (loaded with --extra_modules)."""

from keras_compat import keras
from registry import MODELS
from zoo.recipe import ModelRecipe


@MODELS.register("bn_test_net", recipe=ModelRecipe(input_size=63, min_input_size=8, eval_resize=72, num_classes=4),
                 params=1, description="Test model: conv -> batch norm -> relu -> pool -> dense.")
def bn_test_net(*, num_classes: int = 4, image_size: int = 63) -> keras.Model:
    """conv (no bias) -> batch norm -> ReLU -> global average pool -> dense ``logits``."""
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.5, name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
