"""A user's own model, registered without touching the zoo.

Run it with the zoo's trainer:

    python main.py --extra_modules=examples.custom_model --model=tiny_convnet --synthetic \
        --max_train_steps=10 --batch_size=8

The module only has to import ``registry.MODELS`` and decorate a builder that takes keyword-only
arguments (``num_classes``, ``image_size`` and whatever else it needs) and returns a Keras model
mapping normalised NHWC images to logits. The recipe registered with it sets the input size and
normalisation used by the input pipeline.
"""

from keras_compat import keras
from registry import MODELS
from zoo.recipe import ModelRecipe


@MODELS.register(
    "tiny_convnet",
    recipe=ModelRecipe(input_size=32, min_input_size=8, eval_resize=36, num_classes=10),
    initializers=("he_uniform", "xavier"),  # what main.py accepts for --initializer with this model
    description="Example plugin: two convolutions and a linear classifier.",
)
def tiny_convnet(*, num_classes: int = 10, image_size: int = 32, width: int = 16, initializer: str = "he_uniform"):
    """A small CNN with a choice of initialiser (``--initializer``); optional arguments are all it needs."""
    init = {"he_uniform": "he_uniform", "xavier": "glorot_uniform"}[initializer]
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(width, 3, strides=2, activation="relu", kernel_initializer=init)(inputs)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name="tiny_convnet")
