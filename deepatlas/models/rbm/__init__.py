"""Boltzmann family: RBM and Gaussian RBM (contrastive divergence, persistent CD, AIS), the
convolutional RBM, deep belief networks (greedy pretraining, then fine-tuning), the RBM for
collaborative filtering, the deep Boltzmann machine and the recurrent temporal RBM.

Modules: ``rbm``, ``conv_rbm``, ``dbn``, ``cf``, ``dbm``, ``rtrbm`` and ``export``."""
