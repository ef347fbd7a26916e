"""Projecting whole datasets: input expansion, a resumable manifest, sharding, and local and Ray engines.

- :mod:`~wplus.datasets.inputs`: files, folders (recursive), globs and ``@list.txt`` files -> the images to project.
- :mod:`~wplus.datasets.manifest`: ``OUTDIR/manifest*.jsonl``, one JSON record per image and event; hashes of
  inputs and of the run's recipe, what a rerun may skip, and a summary (``wplus manifest``).
- :mod:`~wplus.datasets.runner`: plan a run (resume, ``--shard``), project images in batches and write each
  image's folder all at once; the local engine.
- :mod:`~wplus.datasets.ray_engine`: the same work through Ray Data (``pip install 'wplus[ray]'``).

docs/datasets.md describes the command-line side.
"""

from wplus.datasets.inputs import InputImage, expand_inputs, unique_names
from wplus.datasets.manifest import Record, Shard, read_manifests, summarize

__all__ = ["InputImage", "expand_inputs", "unique_names", "Record", "Shard", "read_manifests", "summarize"]
