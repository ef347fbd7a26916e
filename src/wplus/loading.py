"""Which generator a name means, and ``load_generator``: one entry point for every generator file wplus can read.

:func:`resolve_model` is the only place that turns what a user typed (``--model``, ``load_generator(...)``) into a
file: a path, a registered name (``wplus weights list``), a URL, the shipped ``cartoon-faces-64``, or nothing (the
default registry model, else the shipped one). It also takes what it returned (a :class:`ModelFile`) and a generator
that :func:`load_generator` read (which remembers its file, :func:`generator_file`), so every library function that
takes a model takes any of these. Readers register themselves in ``READERS`` (suffix -> reader), so adding a format
adds no branches here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from wplus.errors import CheckpointError, ChecksumMismatchError, OfflineError, WplusError
from wplus.hub.download import sha256_file as file_sha256
from wplus.hub.registry import WeightSpec
from wplus.io.checkpoint import load_native_generator
from wplus.shipped import DEFAULT_MODEL, SHIPPED_MODEL, SHIPPED_RESOLUTION, SHIPPED_SHA256, shipped_generator_path

__all__ = [
    "load_generator",
    "load_generator_info",
    "LoadedGenerator",
    "ModelFile",
    "ModelLike",
    "resolve_model",
    "generator_file",
    "model_file",
    "verify_model",
    "is_generator_name",
    "GENERATOR_KINDS",
    "READERS",
    "file_sha256",
]

log = logging.getLogger(__name__)

Reader = Callable[[Path, torch.device], torch.nn.Module]
READERS: dict[str, Reader] = {".safetensors": lambda p, d: load_native_generator(p, device=d)}
GENERATOR_KINDS = frozenset({"stylegan2", "stylegan1", "stylegan3"})  # registry kinds that load_generator reads
_ACCEPTS = (
    "expected a generator file (.safetensors, NVIDIA or TF .pkl, rosinality .pt), a name from `wplus weights list` "
    f"({SHIPPED_MODEL} is shipped with wplus), or a URL"
)


@dataclass(frozen=True)
class ModelFile:
    """The file a model name means.

    Attributes:
        path: The generator file to read (a local file, the cached download, or the shipped asset).
        model_id: What results record as the model: the registered name, ``url-<hash>`` or the file's stem.
        shipped: Whether this is the shipped model (``wplus demo`` then uses its discriminator as the loss).
        sha256: The file's SHA-256 once it has been read (:func:`load_generator_info` fills it), else ''.
    """

    path: Path
    model_id: str
    shipped: bool = False
    sha256: str = ""


@dataclass
class LoadedGenerator:
    G: torch.nn.Module
    path: Path
    model_id: str
    sha256: str
    shipped: bool = False

    @property
    def file(self) -> ModelFile:
        """Where ``G`` came from, as :func:`resolve_model` takes it back."""
        return ModelFile(self.path, self.model_id, self.shipped, self.sha256)


# What every library function that takes a model accepts (resolve_model turns it into a file); None means the
# default model where a function allows it.
ModelLike = str | Path | ModelFile | LoadedGenerator | torch.nn.Module

_FILE_ATTR = "model_file"  # the attribute under which load_generator_info leaves a generator its ModelFile


def generator_file(G: torch.nn.Module) -> ModelFile | None:
    """The file ``G`` was read from by :func:`load_generator` (id, path, SHA-256), or None for a generator built in
    memory. A copy of a loaded generator (a pivotal tuning's ``apply``) keeps its base file's record.

    Example:
        >>> generator_file(load_generator("cartoon-faces-64")).model_id
        'cartoon-faces-64'
    """
    found = getattr(G, _FILE_ATTR, None)
    return found if isinstance(found, ModelFile) else None


def resolve_model(
    model: ModelLike | None,
    *,
    allow_download: bool = True,
    progress: bool = True,
    notice: Callable[[str], None] | None = None,
    fallback: bool = True,
) -> ModelFile:
    """The generator file ``model`` means.

    In order: ``None`` is :data:`~wplus.shipped.DEFAULT_MODEL`, or, when that cannot be had (offline, download
    failed), the shipped model with one notice line (``fallback``) or an error that says how to get one; a string
    with ``://`` is a URL (downloaded once, cached, checksum recorded on first use); an existing path is that file;
    ``'cartoon-faces-64'`` is the shipped model; a registered generator name is fetched from the cache or
    downloaded. A name given explicitly never falls back.
    A :class:`ModelFile` is returned as it is; a :class:`LoadedGenerator` or a generator that
    :func:`load_generator` read gives the file it came from.

    Args:
        model: What the user gave (``--model``, a function's ``model`` argument), or None.
        allow_download: If False, a registered file missing from the cache raises :class:`~wplus.OfflineError`.
        progress: Show a download progress bar on stderr.
        notice: Receives the fallback line; without it the line is logged as a warning (never both).
        fallback: Whether ``None`` may mean the shipped model when the default cannot be had. Commands that fit a
            user's photo pass False: a 64 px cartoon model silently standing in for FFHQ is worse than an error.

    Returns:
        The file and the id results record.

    Raises:
        CheckpointError: ``model`` is neither a file, a URL nor a registered generator, or is a generator built in
            memory (it has no file).
        OfflineError: A named model must be downloaded but cannot be (or, without ``fallback``, the default).
        ChecksumMismatchError: A cached or downloaded file fails verification.

    Example:
        >>> found = resolve_model("cartoon-faces-64")
        >>> (found.model_id, found.shipped, resolve_model(found) is found)
        ('cartoon-faces-64', True, True)
    """
    from wplus.hub import REGISTRY, fetch
    from wplus.hub.remote import url_spec

    if model is None:
        return _default_model(allow_download=allow_download, progress=progress, notice=notice, fallback=fallback)
    if isinstance(model, ModelFile):
        return model
    if isinstance(model, LoadedGenerator):
        return model.file
    if isinstance(model, torch.nn.Module):
        found = generator_file(model)
        if found is None:
            raise CheckpointError(
                None,
                f"this {type(model).__name__} was built in memory, not read from a file, so it names no model; "
                f"pass the model's file or name instead ({_ACCEPTS})",
            )
        return found
    if not isinstance(model, str | Path):
        raise CheckpointError(None, f"got a {type(model).__name__} as the model; {_ACCEPTS}")
    text = str(model)
    # URLs only as text: a Path would have collapsed 'https://' to 'https:/'.
    if isinstance(model, str) and "://" in text:
        spec = url_spec(text)
        return ModelFile(fetch(spec, allow_download=allow_download, progress=progress), spec.name)
    path = Path(model)
    if path.is_dir():
        raise CheckpointError(path, f"is a folder; {_ACCEPTS}")
    if path.exists():
        return ModelFile(path, path.stem)
    if text == SHIPPED_MODEL:
        return ModelFile(shipped_generator_path(), SHIPPED_MODEL, shipped=True)
    spec = REGISTRY.get(text)
    if spec is None:
        raise CheckpointError(text, f"no such file or registered model; {_ACCEPTS}")
    if spec.kind not in GENERATOR_KINDS:
        raise CheckpointError(text, f"is registered as {spec.kind} weights, not a generator; {_ACCEPTS}")
    return ModelFile(fetch(spec, allow_download=allow_download, progress=progress), spec.name)


def _default_model(
    *, allow_download: bool, progress: bool, notice: Callable[[str], None] | None, fallback: bool
) -> ModelFile:
    from wplus.hub import fetch

    try:
        return ModelFile(fetch(DEFAULT_MODEL, allow_download=allow_download, progress=progress), DEFAULT_MODEL)
    except WplusError as e:
        if not fallback:
            raise OfflineError(
                f"no --model given and the default model {DEFAULT_MODEL} is not cached and cannot be downloaded; "
                f"get it with `wplus weights download {DEFAULT_MODEL}`, or pass --model {SHIPPED_MODEL} (the shipped "
                f"{SHIPPED_RESOLUTION} px cartoon-face model, works offline) or --model FILE"
            ) from None
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        line = (
            f"using the shipped model {SHIPPED_MODEL} ({SHIPPED_RESOLUTION} px cartoon faces) because the default "
            f"model {DEFAULT_MODEL} is unavailable: {reason}"
        )
        if notice is None:
            log.warning("%s", line)
        else:
            notice(line)
        return ModelFile(shipped_generator_path(), SHIPPED_MODEL, shipped=True)


def load_generator(source: ModelLike | None, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a generator (eval mode, frozen): a file, registered name, URL, ``'cartoon-faces-64'``, a
    :class:`ModelFile`, or None.

    See :func:`resolve_model` for what each means and :func:`load_generator_info` for provenance. The generator
    remembers its file (:func:`generator_file`): :func:`wplus.default_loss` finds its discriminator from it and
    :func:`wplus.project` records its id and SHA-256.

    Example:
        >>> G = load_generator("cartoon-faces-64")  # the shipped model: no download
        >>> G.img_resolution
        64
    """
    return load_generator_info(source, device=device).G


def load_generator_info(
    source: ModelLike | None,
    *,
    device: str | torch.device = "cpu",
    notice: Callable[[str], None] | None = None,
    fallback: bool = True,
) -> LoadedGenerator:
    """Load a generator and say where it came from (path, model id, SHA-256); ``source``, ``notice`` and
    ``fallback`` as :func:`resolve_model`.

    A generator given as ``source`` is read again from its file (a fresh copy, on ``device``).
    """
    found = resolve_model(source, notice=notice, fallback=fallback)
    reader = READERS.get(found.path.suffix.lower())
    if reader is None:
        raise CheckpointError(
            found.path, f"unsupported file type {found.path.suffix!r}; this wplus reads {sorted(READERS)}"
        )
    G = reader(found.path, torch.device(device))
    info = LoadedGenerator(
        G=G, path=found.path, model_id=found.model_id, sha256=file_sha256(found.path), shipped=found.shipped
    )
    setattr(G, _FILE_ATTR, info.file)  # a plain attribute: not a parameter, buffer or submodule
    return info


def model_file(name: str) -> Path:
    """Where the file of a name from ``wplus weights list`` lives, or will live once downloaded.

    Raises:
        WplusError: ``name`` is neither the shipped model nor registered.
    """
    from wplus.hub import cached_path

    return shipped_generator_path() if name == SHIPPED_MODEL else cached_path(name)


def verify_model(name: str) -> Path:
    """Check the local copy of a name from ``wplus weights list`` against its SHA-256, downloading nothing.

    The shipped model is compared with :data:`~wplus.shipped.SHIPPED_SHA256`; registered files with the registry's
    digest or, where none is published, the one recorded at their first download.

    Returns:
        The verified file.

    Raises:
        ChecksumMismatchError: The file's SHA-256 differs.
        OfflineError: A registered file is not in the cache.
        WplusError: ``name`` is unknown.
    """
    from wplus.hub import fetch

    if name != SHIPPED_MODEL:
        return fetch(name, allow_download=False)
    path = shipped_generator_path()
    actual = file_sha256(path)
    if actual != SHIPPED_SHA256:
        raise ChecksumMismatchError(path, f"SHA-256 is {actual}, expected {SHIPPED_SHA256}; reinstall wplus")
    return path


def is_generator_name(name: str) -> bool:
    """Whether a name from ``wplus weights list`` is a generator (``load_generator`` reads it)."""
    from wplus.hub import REGISTRY

    spec: WeightSpec | None = REGISTRY.get(name)
    return name == SHIPPED_MODEL or (spec is not None and spec.kind in GENERATOR_KINDS)


# --------------------------------------------------------------------------------------------------------------------
# Foreign checkpoints (NVIDIA / TF pickles, rosinality .pt).


def _foreign_reader(path: Path, device: torch.device) -> torch.nn.Module:
    from wplus.formats.dispatch import load_foreign_generator

    return load_foreign_generator(path, device=device)


READERS.update({".pkl": _foreign_reader, ".pt": _foreign_reader, ".pth": _foreign_reader})
