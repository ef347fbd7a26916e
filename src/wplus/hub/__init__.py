"""Known checkpoints, verified downloads and the local cache.

Example:
    >>> from wplus.hub import fetch
    >>> path = fetch("vgg16-imagenet")  # doctest: +SKIP
"""

from wplus.hub import zoo  # noqa: F401  (registers the model zoo)
from wplus.hub.download import (
    cache_dir,
    cached_path,
    download,
    fetch,
    is_offline,
    network_problem,
    open_url,
    sha256_file,
)
from wplus.hub.registry import REGISTRY, WeightSpec, get_spec, list_specs, register

__all__ = [
    "WeightSpec",
    "REGISTRY",
    "register",
    "get_spec",
    "list_specs",
    "cache_dir",
    "cached_path",
    "sha256_file",
    "is_offline",
    "network_problem",
    "open_url",
    "download",
    "fetch",
]

from wplus.hub import (
    zoo_encoders,  # noqa: E402,F401  (registers the released pSp / e4e / ReStyle encoders)
    zoo_stylegan1,  # noqa: E402,F401  (registers the StyleGAN v1 pickles)
)
