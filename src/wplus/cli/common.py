"""Helpers shared by the subcommands: devices, seed ranges, one-line errors, progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import torch
from click.core import ParameterSource

from wplus.errors import WplusError

if TYPE_CHECKING:
    from wplus.loading import LoadedGenerator

F = TypeVar("F", bound=Callable[..., Any])

DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda", "mps"])
MODEL_HELP = (
    "Generator: a file (.safetensors, NVIDIA/TF .pkl, rosinality .pt), a registered name, a URL, or "
    "cartoon-faces-64 (shipped). Default: stylegan2-ffhq-1024, or the shipped model when that cannot be downloaded."
)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine (try --device cpu)", param_hint="--device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise click.BadParameter("Apple MPS is not available on this machine", param_hint="--device")
    return torch.device(name)


def parse_int_ranges(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (non-negative integers)."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
            raise click.BadParameter(f"{text!r}: expected non-negative integers and ranges such as '0-7,10'")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out:
        raise click.BadParameter(f"{text!r}: no numbers given")
    return out


def one_line_errors(fn: F) -> F:
    """Turn wplus errors into a one-line message and exit status 1 (no traceback from deep inside torch)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WplusError as e:
            raise click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    return wrapper  # type: ignore[return-value]


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def err(msg: str) -> None:
    click.echo(msg, err=True)


def explicit_options(ctx: click.Context) -> set[str]:
    """Names of the options the user gave (command line or environment), as opposed to defaults."""
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name for name in ctx.params if ctx.get_parameter_source(name) in given}


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def open_model(model: str | None, *, device: torch.device) -> LoadedGenerator:
    """``--model`` as every command means it (:func:`wplus.loading.resolve_model`); the fallback notice goes to
    stderr once."""
    from wplus.loading import load_generator_info

    return load_generator_info(model, device=device, notice=err)
