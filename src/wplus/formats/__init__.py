"""Readers of foreign files (NVIDIA / TF pickles, rosinality .pt, latents in the wild), all without running code."""
