"""Datasets wplus draws or reads itself: procedural cartoon faces and image folders for training."""
