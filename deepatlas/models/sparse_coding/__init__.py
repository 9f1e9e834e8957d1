"""Sparse-coding family: ISTA/FISTA/coordinate descent/OMP coders, dictionary learning, LISTA and
convolutional sparse coding.

Modules: ``solvers`` (the lasso and OMP kernels), ``coders`` (the estimators), ``conv`` and
``export``."""
