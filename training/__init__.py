"""The training loop and the optimizer stack: one step for every backend, optimizers, schedules, EMA.

Owns the step and the loop (:mod:`training.trainer`, :mod:`training.nonfinite`), the optimizers and
learning-rate schedules (registered below, by name, without importing TensorFlow: ``--optimizer`` and
``--lr_schedule`` are validated against these lists, and ``--help`` shows them), weight decay, losses,
the weights' moving average, synchronised batch norm and the training log. May import ``runs``,
``weights``, ``datasets``, ``backends``, ``zoo``, ``run_config`` and the top level; never
``evaluation``, ``export`` or ``modes``.
"""

from registry import OPTIMIZERS, SCHEDULES

_OPT = "training.optimizers:"
OPTIMIZERS.register_lazy("momentum", _OPT + "momentum",
                         description="heavy-ball momentum, Nesterov with --use_nesterov (the Ascend recipe's)")
OPTIMIZERS.register_lazy("sgd", _OPT + "sgd", description="plain SGD")
OPTIMIZERS.register_lazy("adam", _OPT + "adam", description="Keras' Adam")
OPTIMIZERS.register_lazy("rmsprop", _OPT + "rmsprop", description="Keras' RMSprop")
OPTIMIZERS.register_lazy("adamw", _OPT + "adamw", decoupled_decay=True,
                         description="torch's AdamW: decoupled weight decay")
OPTIMIZERS.register_lazy("lamb", _OPT + "lamb", decoupled_decay=True, description="LAMB (You et al. 2019)")
OPTIMIZERS.register_lazy("lars", _OPT + "lars", decoupled_decay=True,
                         description="LARS (You et al. 2017): decay inside the layer-wise trust ratio")
OPTIMIZERS.register_lazy("rmsprop_tf", _OPT + "rmsprop_tf",
                         description="TF1's RMSprop: eps inside the root, mean square from 1 (MobileNet, EfficientNet)")
OPTIMIZERS.register_lazy("rmsprop_torch", _OPT + "rmsprop_torch",
                         description="torch's RMSprop, as torchvision's --opt rmsprop")

_SCHED = "training.schedules:"
SCHEDULES.register_lazy("cosine", _SCHED + "cosine", description="cosine annealing to --lr_min (the Ascend recipe)")
SCHEDULES.register_lazy("constant", _SCHED + "constant", description="the peak lr throughout")
SCHEDULES.register_lazy("piecewise", _SCHED + "piecewise",
                        description="x --lr_decay_factor at each of --lr_decay_boundaries (MultiStepLR)")
SCHEDULES.register_lazy("exponential", _SCHED + "exponential",
                        description="x --lr_decay_factor every --lr_decay_epochs (StepLR, ExponentialLR)")
SCHEDULES.register_lazy("polynomial", _SCHED + "polynomial", description="(1 - t/T) ** --lr_power (PolynomialLR)")
SCHEDULES.register_lazy("cosine_restarts", _SCHED + "cosine_restarts",
                        description="cosine with warm restarts every --lr_restart_epochs x --lr_restart_mult^k (SGDR)")
