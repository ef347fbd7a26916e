"""``load_generator``: one entry point for every generator file wplus can read.

Today: our safetensors format (``wplus weights random`` / ``wplus weights convert`` write it). Readers for foreign
formats register themselves in ``READERS`` (suffix -> reader), so adding a format adds no branches here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from wplus.errors import CheckpointError
from wplus.hub.download import sha256_file as file_sha256
from wplus.io.checkpoint import load_native_generator

__all__ = ["load_generator", "LoadedGenerator", "READERS", "file_sha256"]

Reader = Callable[[Path, torch.device], torch.nn.Module]
READERS: dict[str, Reader] = {".safetensors": lambda p, d: load_native_generator(p, device=d)}


@dataclass
class LoadedGenerator:
    G: torch.nn.Module
    path: Path
    model_id: str
    sha256: str


def load_generator(source: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a generator from a file path (eval mode, frozen). See :func:`load_generator_info` for provenance."""
    return load_generator_info(source, device=device).G


def load_generator_info(source: str | Path, *, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a generator from a path, a registered name (``wplus weights list``) or a URL (downloaded, cached)."""
    remote = _resolve_remote(source)
    if remote is not None:
        path, model_id = remote
        G = READERS[path.suffix.lower()](path, torch.device(device))
        return LoadedGenerator(G=G, path=path, model_id=model_id, sha256=file_sha256(path))
    path = Path(source)
    if not path.exists():
        raise CheckpointError(
            path,
            "no such file; pass a generator file (.safetensors, NVIDIA or TF .pkl, rosinality .pt), "
            "a registered name (`wplus weights list`) or a URL",
        )
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise CheckpointError(path, f"unsupported file type {path.suffix!r}; this wplus reads {sorted(READERS)}")
    G = reader(path, torch.device(device))
    return LoadedGenerator(G=G, path=path, model_id=path.stem, sha256=file_sha256(path))


# --------------------------------------------------------------------------------------------------------------------
# Foreign checkpoints (NVIDIA / TF pickles, rosinality .pt), registry names and URLs.


def _foreign_reader(path: Path, device: torch.device) -> torch.nn.Module:
    from wplus.formats.dispatch import load_foreign_generator

    return load_foreign_generator(path, device=device)


READERS.update({".pkl": _foreign_reader, ".pt": _foreign_reader, ".pth": _foreign_reader})


def _resolve_remote(source: str | Path) -> tuple[Path, str] | None:
    """(cached file, model id) for a registry name or a URL; None for a local path."""
    from wplus.hub import REGISTRY, download
    from wplus.hub.remote import url_spec

    text = str(source)
    if isinstance(source, str) and "://" in text:
        spec = url_spec(text)
        return download(spec), spec.name
    # Names also arrive as Path objects (click.Path options such as --model).
    if text in REGISTRY and not Path(text).exists():
        return download(text), text
    return None
