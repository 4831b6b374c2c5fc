"""The zoo's Keras networks, one module per family; :mod:`zoo` registers them by name with their recipes.

Importing a module here imports Keras (TensorFlow); the registrations in ``zoo/<family>.py`` point at
these builders by name, so they are imported only when a model is built.
"""
