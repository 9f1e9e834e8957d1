"""Adversarial family: GAN, WGAN, WGAN-GP, DCGAN, CGAN and InfoGAN.

Modules: ``gan`` (the shared adversarial fit and the dense players), ``variants`` (convolutional,
conditional and information-maximising GANs), ``metrics`` (mode coverage, FID-style scores,
sample pictures) and ``export``."""
