"""The modes a run can take (train, evaluate, train_and_evaluate, predict, export), assembled from a config.

The top of the library: it builds the backend, dataset, model and optimizer that a run's
configuration names and hands them to ``training``, ``evaluation`` and ``export``. ``main.py`` and the
Python API (``modelzoo.py``) call it; no package below imports it.
"""
