"""Helpers shared by the subcommands: devices, seed ranges, one-line errors, progress bars."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import torch
from click.core import ParameterSource

from wplus.errors import WplusError
from wplus.seeds import SEED_LIMIT

if TYPE_CHECKING:
    from wplus.loading import LoadedGenerator

F = TypeVar("F", bound=Callable[..., Any])

DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda", "mps"])
# Every file a command reads is checked when the command line is parsed: a typo is one line naming the flag or
# argument, before a model is read, a loss is built (and its notices printed) or an input is hashed.
INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class DirectionParam(click.ParamType):
    """A direction: an existing file (a Path), or a shipped model's named direction ``MODEL:NAME`` (kept as the
    string; an unknown one is refused when the line is parsed, with the names there are)."""

    name = "FILE|MODEL:NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        from wplus.shipped import named_direction, parse_direction_spec

        if isinstance(value, Path):
            return value
        if parse_direction_spec(value) is not None:
            try:
                return named_direction(value).spec
            except WplusError as e:
                self.fail(str(e), param, ctx)
        return INPUT_FILE.convert(value, param, ctx)


DIRECTION = DirectionParam()
_MODEL_KINDS = (
    "Generator: a file (.safetensors, NVIDIA/TF .pkl, rosinality .pt), a registered name, a URL, or "
    "cartoon-faces-64 (shipped, offline)."
)
MODEL_HELP = f"{_MODEL_KINDS} Default: stylegan2-ffhq-1024; required when that is not cached and cannot be downloaded."
MODEL_HELP_FALLBACK = f"{_MODEL_KINDS} Default: stylegan2-ffhq-1024, or the shipped model when that cannot be had."


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and +-inf (click's range checks let nan through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


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


MAX_RANGE_COUNT = 1_000_000  # parse_int_ranges refuses more numbers than this (a typo must not fill the memory)


def parse_int_ranges(
    text: str, *, param_hint: str | None = None, upper: int | None = None, upper_reason: str = ""
) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11] (non-negative integers, each below ``upper`` when given).

    Raises:
        click.BadParameter: naming ``param_hint`` (the flag): a part that is not a number or a rising range
            ('5-2'), a number >= ``upper`` (``upper_reason`` says why that bound), or more than
            :data:`MAX_RANGE_COUNT` numbers in all (checked before any list is built).
    """
    spans: list[tuple[int, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if match is None:
            raise click.BadParameter(
                f"got {part!r} in {text!r}, expected non-negative integers and ranges such as '0-7,10'",
                param_hint=param_hint,
            )
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise click.BadParameter(
                f"got the range {part!r}, expected the smaller number first ('{last}-{first}')", param_hint=param_hint
            )
        if upper is not None and last >= upper:
            raise click.BadParameter(
                f"got {last} in {text!r}, expected numbers from 0 to {upper - 1}{upper_reason}", param_hint=param_hint
            )
        spans.append((first, last))
    if not spans:
        raise click.BadParameter(f"got {text!r}, expected at least one number such as '0-7,10'", param_hint=param_hint)
    count = sum(last - first + 1 for first, last in spans)
    if count > MAX_RANGE_COUNT:
        raise click.BadParameter(
            f"got {text!r}, {count:,} numbers; expected at most {MAX_RANGE_COUNT:,} in one run (split it)",
            param_hint=param_hint,
        )
    return [n for first, last in spans for n in range(first, last + 1)]


def parse_seeds(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    """``--seeds`` callback ('0-7,42'): seeds in NumPy RandomState's range, as ``wplus generate`` and ``sample``
    take them."""
    return parse_int_ranges(
        value, param_hint="--seeds", upper=SEED_LIMIT, upper_reason=" (what NumPy's RandomState takes)"
    )


def class_label(G: torch.nn.Module, class_idx: int | None, device: torch.device) -> torch.Tensor | None:
    """The one-hot label ``--class`` names for a conditional generator ([1, c_dim]); None for an unconditional one."""
    if not G.c_dim:
        return None
    if class_idx is None or class_idx >= G.c_dim:
        raise click.BadParameter(
            f"this model is conditional with {G.c_dim} classes: pass --class 0..{G.c_dim - 1}", param_hint="--class"
        )
    c = torch.zeros(1, G.c_dim, device=device)
    c[0, class_idx] = 1
    return c


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


def open_model(model: str | None, *, device: torch.device, fallback: bool = False) -> LoadedGenerator:
    """``--model`` as every command means it (:func:`wplus.loading.resolve_model`).

    Without ``--model`` and without the default model, a command that fits or edits a user's photo stops with one
    line saying how to get a model; only commands that merely show what a model does (``generate``) pass
    ``fallback=True`` and run on the shipped model, saying so once on stderr.
    """
    from wplus.loading import load_generator_info

    return load_generator_info(model, device=device, notice=err, fallback=fallback)
