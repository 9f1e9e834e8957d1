"""Autoencoder family: dense, denoising, sparse and convolutional autoencoders and the VAE.

Modules: ``autoencoder``, ``vae`` and ``export``."""
