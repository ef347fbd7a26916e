"""Ad-hoc specs for checkpoints given by URL (``load_generator("https://.../net.pkl")``).

A URL gets a cache folder named after a hash of the URL, and its first download's SHA-256 is recorded and
enforced afterwards (trust on first use), like registered files without a published digest.
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlparse

from wplus.errors import ConfigError
from wplus.hub.registry import REGISTRY, WeightSpec

__all__ = ["url_spec"]


def url_spec(url: str) -> WeightSpec:
    """The registered spec whose URL is ``url``, or a new unregistered one (cache name ``url-<sha1[:12]>``)."""
    for spec in REGISTRY.values():
        if url in spec.urls:
            return spec
    parsed = urlparse(url)
    filename = unquote(parsed.path.rsplit("/", 1)[-1])
    if parsed.scheme not in ("http", "https", "file") or not filename or filename in (".", ".."):
        raise ConfigError(f"got URL {url!r}, expected an http(s) or file URL that ends in a file name")
    return WeightSpec(
        name="url-" + hashlib.sha1(url.encode()).hexdigest()[:12],
        filename=filename,
        urls=(url,),
        sha256=None,
        size=None,
        license="unknown",
        source=url,
        description=f"checkpoint downloaded from {url}",
        kind="stylegan2",
    )
