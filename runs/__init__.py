"""A run's state on disk: checkpoints, the directory lock, resume checks and preemption.

Owns what must survive a crash or a signal: ``model.ckpt-<step>`` files and their retention
(:mod:`runs.checkpoints`), one run per directory (:mod:`runs.run_lock`), the comparison of a resumed
run with the run that wrote its checkpoint (:mod:`runs.resume_check`), and SIGTERM/SIGINT handling
(:mod:`runs.preemption`). May import only the top-level modules and ``run_config``; every package above
(training, evaluation, export, modes) uses it.
"""
