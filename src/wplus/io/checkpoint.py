"""wplus's own checkpoint format: one ``.safetensors`` file whose header metadata holds the JSON config.

Reading it needs no pickle: safetensors stores raw tensors plus a JSON header, so opening an untrusted file executes
nothing. Metadata keys: ``wplus_format`` ("1"), ``arch`` (e.g. "stylegan2", "stylegan2_discriminator",
"wplus_train_checkpoint"), ``config`` (JSON of the arch's config dataclass) and free-form provenance (``source``,
``converted_from``, ...).

This module is the one owner of the format for every file we write: generators, discriminators and training
checkpoints (:mod:`wplus.train.trainer`) all go through :func:`write_checkpoint`, :func:`read_metadata` and
:func:`read_tensors`. Nothing is allocated from a header before it is checked: the config validates its own
ranges (:mod:`wplus.models.config`), then the network it describes is built on PyTorch's ``meta`` device (shapes
only, no memory) and its state-dict shapes are compared with the shapes stored in the file, which safetensors
reports without reading any data. Only a file whose tensors are exactly the network's is then built and read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from wplus.errors import CheckpointError, ConfigError
from wplus.io.atomic import atomic_write

FORMAT_VERSION = "1"

__all__ = [
    "FORMAT_VERSION",
    "save_generator",
    "load_native_generator",
    "read_native_metadata",
    "save_discriminator",
    "load_discriminator",
    "write_checkpoint",
    "read_metadata",
    "stored_shapes",
    "meta_shapes",
    "check_shapes",
    "read_tensors",
]

Shapes = dict[str, tuple[int, ...]]
DISCRIMINATOR_ARCH = "stylegan2_discriminator"

# --------------------------------------------------------------------------------------------------------------------
# The format: tensors + JSON header


def write_checkpoint(
    path: str | Path,
    tensors: Mapping[str, torch.Tensor],
    *,
    arch: str,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``tensors`` (moved to CPU, contiguous) and our header atomically; non-string metadata becomes JSON.

    ``wplus_format`` and ``arch`` are this function's to write; metadata that sets them is an error.
    """
    meta = {"wplus_format": FORMAT_VERSION, "arch": arch}
    clash = sorted(set(meta) & set(metadata or {}))
    if clash:
        raise ConfigError(f"metadata keys {clash} are reserved for the format itself")
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(data, str(p), metadata=meta))


def read_metadata(path: str | Path, *, arch: str | tuple[str, ...] | None = None, what: str = "") -> dict[str, str]:
    """The header metadata of one of our safetensors files, checked: readable, our format and version, ``arch``.

    Args:
        path: the file.
        arch: the architecture(s) accepted; None accepts any.
        what: how the file is described in errors ("a discriminator written by `wplus train`").

    Raises:
        CheckpointError: missing or unreadable file, no wplus metadata, another format version or architecture.
    """
    path = Path(path)
    described = what or "a wplus safetensors file"
    if not path.is_file():
        raise CheckpointError(path, f"no such file; expected {described}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors file ({e}); expected {described}") from None
    if "wplus_format" not in meta or "arch" not in meta:
        raise CheckpointError(
            path,
            "a safetensors file without wplus metadata (wplus_format, arch, config); "
            "convert foreign checkpoints with `wplus weights convert IN OUT`",
        )
    if meta["wplus_format"] != FORMAT_VERSION:
        raise CheckpointError(
            path, f"wplus format {meta['wplus_format']!r}, this wplus reads {FORMAT_VERSION!r}; upgrade wplus"
        )
    accepted = (arch,) if isinstance(arch, str) else arch
    if accepted is not None and meta["arch"] not in accepted:
        raise CheckpointError(path, f"got arch {meta['arch']!r}, expected {described} ({' or '.join(accepted)})")
    return meta


def decoded_metadata(path: str | Path, *, arch: str, what: str) -> dict[str, Any]:
    """Every header entry of a file of ``arch``, JSON-decoded where it is JSON (config, metrics, training)."""
    out: dict[str, Any] = {}
    for k, v in read_metadata(path, arch=arch, what=what).items():
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def json_field(path: Path, meta: Mapping[str, str], key: str) -> Any:
    """``json.loads(meta[key])`` with a CheckpointError naming the file and key."""
    if key not in meta:
        raise CheckpointError(path, f"header has no {key!r} entry; the file is damaged or not written by wplus")
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as e:
        raise CheckpointError(path, f"header entry {key!r} is not valid JSON ({e})") from None


def stored_shapes(path: str | Path) -> Shapes:
    """Name -> shape of every tensor in the file, from the header alone (no tensor data is read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (no __iter__)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"not a readable safetensors file ({e})") from None


def meta_shapes(build: Callable[[], torch.nn.Module], prefix: str = "") -> Shapes:
    """State-dict shapes of ``build()`` constructed on the ``meta`` device: nothing is allocated."""
    with torch.device("meta"):
        module = build()
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def check_shapes(
    path: str | Path,
    stored: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    *,
    optional: Mapping[str, tuple[int, ...]] | None = None,
    what: str = "its config",
) -> None:
    """Every ``expected`` tensor stored with its shape, nothing else stored except ``optional`` ones (same rule).

    Raises:
        CheckpointError: one line naming the first missing, unexpected and mismatched tensors.
    """
    allowed = {**(optional or {}), **expected}
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in allowed]
    wrong = [
        f"{k} {list(stored[k])} (expected {list(allowed[k])})"
        for k in stored
        if k in allowed and stored[k] != allowed[k]
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            parts.append(f"{label} {len(items)}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}")
    raise CheckpointError(path, f"tensors do not match {what}: {'; '.join(parts)}")


def read_tensors(
    path: str | Path,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    *,
    optional: Mapping[str, tuple[int, ...]] | None = None,
    what: str = "its config",
) -> dict[str, torch.Tensor]:
    """Read every tensor of the file, after :func:`check_shapes` against ``expected`` (unless None)."""
    path = Path(path)
    if expected is not None:
        check_shapes(path, stored_shapes(path), expected, optional=optional, what=what)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"cannot read tensors ({e})") from None


def training_tensors(module: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """A training state as safetensors can hold it: ``model.*`` weights, ``opt.<param>.<name>`` optimiser tensors,
    and the optimiser's param groups without their params (for the metadata). :func:`restore_training` reads it."""
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    opt_state = opt.state_dict()
    for i, state in opt_state["state"].items():
        for k, v in state.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]]
    return tensors, groups


def restore_training(
    path: Path, meta: Mapping[str, str], module: torch.nn.Module, opt: torch.optim.Optimizer, what: str
) -> None:
    """Load what :func:`training_tensors` wrote into ``module`` (strictly) and ``opt``; ``what`` names the module
    in the one-line error of weights that do not fit."""
    tensors = read_tensors(path)
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        module.load_state_dict(model, strict=True)
    except RuntimeError as e:
        raise CheckpointError(path, f"weights do not match the {what}: {str(e).splitlines()[0]}") from None
    opt_state: dict[str, Any] = {"state": {}, "param_groups": []}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[name] = v
    groups = json_field(path, meta, "param_groups")
    params = [g["params"] for g in opt.state_dict()["param_groups"]]
    opt_state["param_groups"] = [{**g, "params": p} for g, p in zip(groups, params, strict=True)]
    opt.load_state_dict(opt_state)


def parse_config(path: Path, config_cls: type, data: Any, what: str = "config") -> Any:
    """``config_cls.from_dict(data)``; a config out of bounds or of the wrong type is a CheckpointError."""
    try:
        return config_cls.from_dict(data)
    except (ConfigError, ValueError, TypeError) as e:
        raise CheckpointError(path, f"invalid {what} in its header: {e}") from None


def load_module(
    path: Path,
    model_cls: Callable[[Any], torch.nn.Module],
    config: Any,
    *,
    what: str,
    device: str | torch.device,
) -> torch.nn.Module:
    """Check shapes on the meta device, build ``model_cls(config)``, load strictly; eval mode, frozen."""
    state = read_tensors(path, meta_shapes(lambda: model_cls(config)), what=what)
    model = model_cls(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # e.g. a dtype that cannot be copied; shapes and names were checked above
        raise CheckpointError(path, f"weights do not match {what}: {' '.join(str(e).splitlines()[:3])}") from None
    return model.to(device).eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------------------------------
# Generators and discriminators


def _arch_registry() -> dict[str, tuple[type, type]]:
    # Imported on use so that models can be added without this module importing all of them at start-up.
    from wplus.models import stylegan1, stylegan2, stylegan3

    return {
        "stylegan2": (stylegan2.StyleGAN2Config, stylegan2.Generator),
        "stylegan1": (stylegan1.StyleGAN1Config, stylegan1.Generator),
        "stylegan3": (stylegan3.StyleGAN3Config, stylegan3.Generator),
    }


def save_generator(G: torch.nn.Module, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``G`` (weights, buffers and config) to ``path`` atomically in our safetensors format."""
    config = G.config  # type: ignore[attr-defined]
    meta = {"config": json.dumps(config.to_dict()), **(metadata or {})}
    return write_checkpoint(path, G.state_dict(), arch=config.arch, metadata=meta)


def read_native_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a wplus safetensors file (raises CheckpointError if it is not one)."""
    meta = read_metadata(path)
    if "config" not in meta:
        raise CheckpointError(path, "header has no 'config' entry; the file is damaged or not written by wplus")
    return meta


def load_native_generator(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a generator written by :func:`save_generator` (strict key matching, eval mode, no grads).

    Raises:
        CheckpointError: not our format, another architecture (a discriminator, a training checkpoint), a config out
        of bounds, or tensors that are not the ones the config describes (checked before anything is allocated).
    """
    path = Path(path)
    archs = _arch_registry()
    meta = read_native_metadata(path)
    if meta["arch"] not in archs:
        hint = "; load it with wplus.io.checkpoint.load_discriminator" if meta["arch"] == DISCRIMINATOR_ARCH else ""
        raise CheckpointError(
            path, f"architecture {meta['arch']!r} is not a generator this wplus reads ({sorted(archs)}){hint}"
        )
    config_cls, model_cls = archs[meta["arch"]]
    config = parse_config(path, config_cls, json_field(path, meta, "config"))
    return load_module(path, model_cls, config, what=f"the stored {meta['arch']} config", device=device)


def save_discriminator(D: torch.nn.Module, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``D`` (weights and config) atomically as safetensors with our JSON metadata (no pickle)."""
    meta = {"config": json.dumps(D.config.to_dict()), **(metadata or {})}  # type: ignore[attr-defined]
    return write_checkpoint(path, D.state_dict(), arch=DISCRIMINATOR_ARCH, metadata=meta)


def load_discriminator(path: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a discriminator written by :func:`save_discriminator` (strict, eval mode, frozen); checks as for G."""
    from wplus.models.stylegan2_discriminator import Discriminator, DiscriminatorConfig

    path = Path(path)
    meta = read_metadata(path, arch=DISCRIMINATOR_ARCH, what="a discriminator written by `wplus train`")
    config = parse_config(path, DiscriminatorConfig, json_field(path, meta, "config"))
    return load_module(path, Discriminator, config, what="the stored discriminator config", device=device)
