"""Pick the reader for a ``.pkl`` / ``.pt`` / ``.pth`` file from its content, never from trust in its name.

torch zip archives (``PK\\x03\\x04``) and legacy ``torch.save`` files go to the rosinality reader
(``torch.load(weights_only=True)``); other pickles are sniffed for the module names their globals use
(``torch_utils.persistence`` -> NVIDIA, ``dnnlib.tflib.network`` -> TF). A pickle that names neither goes to the
NVIDIA reader, whose allow-list then refuses its first foreign global by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from wplus.errors import CheckpointError

__all__ = ["sniff_format", "load_foreign_generator"]

Format = Literal["nvidia-pkl", "tf-pkl", "torch"]
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled torch.save magic number (protocol 2)


def sniff_format(path: str | Path, data: bytes | None = None) -> Format:
    """Which reader ``path`` needs, from its first bytes and the module names its pickle refers to."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None
    if not data:
        raise CheckpointError(path, "the file is empty; expected a checkpoint (re-download it)")
    if data.startswith(b"PK\x03\x04") or data.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    if b"dnnlib.tflib.network" in data[: 1 << 16]:
        return "tf-pkl"
    return "nvidia-pkl"


def load_foreign_generator(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a generator from an NVIDIA pickle, TF StyleGAN2 or StyleGAN (v1) pickle, or rosinality / torch ``.pt``,
    running no code from the file."""
    from wplus.formats.nvidia_pkl import load_nvidia_pickle
    from wplus.formats.rosinality import load_rosinality
    from wplus.formats.tf_stylegan1 import load_tf_stylegan1
    from wplus.formats.tf_stylegan2 import StyleGAN1PickleError, load_tf_pickle

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None
    fmt = sniff_format(path, data)
    if fmt == "torch":
        del data
        return load_rosinality(path, device=device)
    if fmt == "tf-pkl":
        try:
            return load_tf_pickle(path, device=device, data=data)
        except StyleGAN1PickleError:
            return load_tf_stylegan1(path, device=device)
    return load_nvidia_pickle(path, device=device, data=data)
