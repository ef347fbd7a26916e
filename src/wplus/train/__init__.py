"""Training StyleGAN2 generators on small datasets (``wplus train``)."""
