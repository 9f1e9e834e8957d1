"""Boltzmann family: RBM and Gaussian RBM (contrastive divergence, persistent CD, AIS), the
convolutional RBM, and deep belief networks (greedy pretraining, then fine-tuning).

Modules: ``rbm``, ``conv_rbm``, ``dbn`` and ``export``."""
