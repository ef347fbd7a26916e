"""Pick the reader for a ``.pkl`` / ``.pt`` / ``.pth`` file from its content, never from trust in its name.

torch zip archives (``PK\\x03\\x04``) and legacy ``torch.save`` files go to the rosinality reader
(``torch.load(weights_only=True)``); other pickles are sniffed for the module names their globals use
(``torch_utils.persistence`` -> NVIDIA, ``dnnlib.tflib.network`` -> TF). A pickle that names neither goes to the
NVIDIA reader, whose allow-list then refuses its first foreign global by name.

Discriminators (the offline perceptual loss, :class:`wplus.losses.DiscriminatorFeatures`) come from the same files:
:func:`load_discriminator_file` reads one from any file that stores one, :func:`find_discriminator` says which file
holds the discriminator of a generator file, and :func:`load_discriminator_for` loads it (or says there is none).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from wplus.errors import CheckpointError
from wplus.formats.d_state import NoDiscriminatorError
from wplus.models.stylegan2_discriminator import Discriminator

if TYPE_CHECKING:
    from wplus.loading import ModelLike

__all__ = [
    "sniff_format",
    "load_foreign_generator",
    "load_foreign_discriminator",
    "load_discriminator_file",
    "find_discriminator",
    "load_discriminator_for",
    "NoDiscriminatorError",
]

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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None


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


def load_foreign_discriminator(path: str | Path, *, device: str | torch.device = "cpu") -> Discriminator:
    """Load the discriminator stored in an NVIDIA snapshot pickle, a TF ``(G, D, Gs)`` pickle or a rosinality
    training checkpoint (key ``d``), running no code from the file.

    Raises:
        NoDiscriminatorError: the file holds a generator only (one line naming the file and what to pass instead).
        CheckpointError: unreadable, hostile, or not a StyleGAN2 discriminator.
    """
    from wplus.formats.nvidia_pkl import load_nvidia_discriminator
    from wplus.formats.rosinality import load_rosinality_discriminator
    from wplus.formats.tf_stylegan2 import load_tf_discriminator

    path = Path(path)
    data = _read(path)
    fmt = sniff_format(path, data)
    if fmt == "torch":
        del data
        return load_rosinality_discriminator(path, device=device)
    if fmt == "tf-pkl":
        return load_tf_discriminator(path, device=device, data=data)
    return load_nvidia_discriminator(path, device=device, data=data)


def load_discriminator_file(path: str | Path, *, device: str | torch.device = "cpu") -> Discriminator:
    """A discriminator from ``path``: our ``.safetensors`` (``wplus train``'s ``D.safetensors``, the shipped
    ``*-D.safetensors``) or any foreign file that stores D (:func:`load_foreign_discriminator`)."""
    from wplus.io.checkpoint import DISCRIMINATOR_ARCH, load_discriminator, read_metadata

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        meta = read_metadata(path)
        if meta["arch"] != DISCRIMINATOR_ARCH:
            raise NoDiscriminatorError(
                path,
                f"a wplus {meta['arch']!r} file, not a discriminator; pass its D file ({path.stem}-D.safetensors, or "
                "D.safetensors in a `wplus train` folder) or a foreign file that stores D",
            )
        return load_discriminator(path, device=device)  # type: ignore[return-value]
    return load_foreign_discriminator(path, device=device)


def _native_sidecar(model_path: Path) -> Path | None:
    candidates = [model_path.with_name(f"{model_path.stem}-D.safetensors")]
    if model_path.name == "G_ema.safetensors":
        candidates.append(model_path.with_name("D.safetensors"))  # a `wplus train` run folder
    return next((c for c in candidates if c.is_file()), None)


def _generator_path(model: ModelLike) -> Path:
    """The generator file ``model`` means (a name, path, ModelFile or loaded generator: :func:`wplus.resolve_model`)."""
    from wplus.loading import resolve_model

    return resolve_model(model).path


def find_discriminator(model: ModelLike) -> Path | None:
    """The file that holds the discriminator belonging to the generator ``model``, or None.

    ``model`` is anything :func:`wplus.resolve_model` takes: a generator file, a registered name such as
    ``'cartoon-faces-64'``, a :class:`~wplus.loading.ModelFile`, or a generator that ``load_generator`` read.

    The rule: for our ``X.safetensors``, ``X-D.safetensors`` beside it (the shipped model's sidecar follows it,
    :func:`wplus.shipped.shipped_discriminator_path`), or ``D.safetensors`` beside a ``G_ema.safetensors`` written
    by ``wplus train``; for a foreign file (NVIDIA / TF pickle, rosinality ``.pt``), the file itself when it stores
    a StyleGAN2 D. Checking a foreign file reads it; :func:`load_discriminator_for` reads it once and keeps D.

    Example:
        >>> find_discriminator("cartoon-faces-64").name
        'cartoon-faces-64-D.safetensors'
    """
    model_path = _generator_path(model)
    if model_path.suffix.lower() == ".safetensors":
        return _native_sidecar(model_path)
    try:
        load_foreign_discriminator(model_path)
    except NoDiscriminatorError:
        return None
    return model_path


def load_discriminator_for(model: ModelLike, *, device: str | torch.device = "cpu") -> Discriminator | None:
    """The discriminator belonging to the generator ``model`` (rule of :func:`find_discriminator`; ``model`` as
    there), or None when there is none. A file that stores a D that cannot be read still raises CheckpointError."""
    model_path = _generator_path(model)
    if model_path.suffix.lower() == ".safetensors":
        sidecar = _native_sidecar(model_path)
        return None if sidecar is None else load_discriminator_file(sidecar, device=device)
    try:
        return load_foreign_discriminator(model_path, device=device)
    except NoDiscriminatorError:
        return None
