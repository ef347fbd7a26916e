"""wplus's own checkpoint format: one ``.safetensors`` file whose header metadata holds the JSON config.

Reading it needs no pickle: safetensors stores raw tensors plus a JSON header, so opening an untrusted file executes
nothing. Metadata keys: ``wplus_format`` ("1"), ``arch`` (e.g. "stylegan2"), ``config`` (JSON of the arch's config
dataclass) and free-form provenance (``source``, ``converted_from``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from wplus.errors import CheckpointError
from wplus.io.atomic import atomic_write

FORMAT_VERSION = "1"

__all__ = ["save_generator", "load_native_generator", "read_native_metadata", "FORMAT_VERSION"]


def _arch_registry() -> dict[str, tuple[type, type]]:
    # Imported lazily so that models can be added without this module importing all of them at start-up.
    from wplus.models import stylegan2

    archs: dict[str, tuple[type, type]] = {"stylegan2": (stylegan2.StyleGAN2Config, stylegan2.Generator)}
    try:
        from wplus.models import stylegan1  # noqa: PLC0415  (added by the StyleGAN v1 port)

        archs["stylegan1"] = (stylegan1.StyleGAN1Config, stylegan1.Generator)
    except ImportError:
        pass
    return archs


def save_generator(G: torch.nn.Module, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``G`` (weights, buffers and config) to ``path`` atomically in our safetensors format."""
    config = G.config  # type: ignore[attr-defined]
    meta = {"wplus_format": FORMAT_VERSION, "arch": config.arch, "config": json.dumps(config.to_dict())}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=meta))


def read_native_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a wplus safetensors file (raises CheckpointError if it is not one)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors file ({e})") from None
    if "wplus_format" not in meta or "arch" not in meta or "config" not in meta:
        raise CheckpointError(
            path,
            "a safetensors file without wplus metadata (arch, config); "
            "convert foreign checkpoints with `wplus weights convert IN OUT`",
        )
    return meta


def load_native_generator(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a generator written by :func:`save_generator` (strict key matching, eval mode, no grads)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    meta = read_native_metadata(path)
    archs = _arch_registry()
    if meta["arch"] not in archs:
        raise CheckpointError(path, f"unknown architecture {meta['arch']!r}; this wplus reads {sorted(archs)}")
    config_cls, model_cls = archs[meta["arch"]]
    try:
        config = config_cls.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(path, f"invalid config in metadata: {e}") from None
    G = model_cls(config)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(path, f"cannot read tensors ({e})") from None
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        detail = " ".join(first)
        raise CheckpointError(path, f"weights do not match the stored {meta['arch']} config: {detail}") from None
    return G.to(device).eval().requires_grad_(False)
