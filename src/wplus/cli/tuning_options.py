"""The pivotal-tuning options: ``--tune`` and its settings on ``wplus project``, the same settings (same names, plus
short aliases) on ``wplus tune``, and ``--tuning FILE`` on every command that renders a code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from wplus.cli.common import INPUT_FILE, FiniteFloatRange
from wplus.errors import ConfigError, WplusError
from wplus.precision import PRECISIONS
from wplus.tuning import (
    DEFAULT_BIASES,
    DEFAULT_LOCALITY_RADIUS,
    DEFAULT_LOCALITY_SAMPLES,
    DEFAULT_LOCALITY_WEIGHT,
    DEFAULT_LR,
    DEFAULT_PIXEL_WEIGHT,
    DEFAULT_RANK,
    DEFAULT_STEPS,
    MAX_LOCALITY_SAMPLES,
    MAX_RANK,
    TuningSettings,
)

F = TypeVar("F", bound=Callable[..., Any])


# Rank 0 matches PTI's deltas only: PTI (PRIOR_ART.md) also tunes at lr 3e-4 with no locality term, biases included.
RANK0_HELP = (
    "Rank of each weight delta (0: full deltas, as PTI's; PTI also differs in lr 3e-4, no locality term and tuned "
    "biases: add --tune-lr 3e-4 --tune-locality 0 --tune-biases for those)."
)

PRECISION_HELP = (
    "bf16: tuning renders and loss under bf16 autocast (the factors and Adam's state stay fp32; native bf16 CPUs, "
    "GPUs); auto: bf16 where faster."
)


def _setting_options(*, aliases: bool) -> list[Callable[[F], F]]:
    """The tuning settings as options, each spelt ``--tune-<setting>`` on every command (``project`` needs the prefix:
    its ``--steps`` and ``--lr`` are the projection's). With ``aliases`` (``wplus tune``, where nothing else is
    tuned) the bare ``--<setting>`` is accepted too, as a second name of the same option."""

    def names(setting: str) -> tuple[str, ...]:
        return (f"--tune-{setting}", f"--{setting}") if aliases else (f"--tune-{setting}",)

    flag = "--tune-biases/--no-tune-biases"
    options = [
        click.option(*names("steps"), "tune_steps", type=click.IntRange(0), default=DEFAULT_STEPS,
                     show_default=True, help="Tuning steps (PTI: 350)."),
        click.option(*names("rank"), "tune_rank", type=click.IntRange(0, MAX_RANK), default=DEFAULT_RANK,
                     show_default=True, help=RANK0_HELP),
        click.option(*names("lr"), "tune_lr", type=FiniteFloatRange(0, min_open=True), default=DEFAULT_LR,
                     show_default=True, help="Tuning learning rate."),
        click.option(*names("locality"), "tune_locality", type=FiniteFloatRange(0),
                     default=DEFAULT_LOCALITY_WEIGHT, show_default=True,
                     help="Weight of the locality term (other codes keep their renders; 0: off)."),
        click.option(*names("radius"), "tune_radius", type=FiniteFloatRange(0), default=DEFAULT_LOCALITY_RADIUS,
                     help="Locality samples at this distance from the pivot, in w spreads (PTI's; default: anywhere "
                     "between the pivot and a random code)."),
        click.option(*names("locality-samples"), "tune_locality_samples",
                     type=click.IntRange(1, MAX_LOCALITY_SAMPLES), default=DEFAULT_LOCALITY_SAMPLES, show_default=True,
                     help="Locality codes per step (each adds a render of both generators)."),
        click.option(*names("pixel-weight"), "tune_pixel_weight", type=FiniteFloatRange(0),
                     default=DEFAULT_PIXEL_WEIGHT, show_default=True,
                     help="Weight of an extra pixel MSE on top of the loss (PSNR is what tuning is for)."),
        click.option(*((flag, "--biases/--no-biases") if aliases else (flag,)), "tune_biases", default=DEFAULT_BIASES,
                     show_default=True, help="Also tune biases and the learned constant (they shift every render)."),
        click.option(*names("stop-psnr"), "tune_stop_psnr", type=FiniteFloatRange(0, min_open=True),
                     default=None, help="Stop tuning once the PSNR reaches this many dB."),
    ]  # fmt: skip
    if aliases:  # `project --tune` has none of its own: the tuning runs at the projection's --precision
        options.append(click.option("--precision", "tune_precision", type=click.Choice(PRECISIONS), default="fp32",
                                    show_default=True, help=PRECISION_HELP))  # fmt: skip
    return options


def _settings(kwargs: dict[str, Any]) -> TuningSettings:
    rank = kwargs.pop("tune_rank")
    try:
        return TuningSettings(
            num_steps=kwargs.pop("tune_steps"),
            lr=kwargs.pop("tune_lr"),
            rank=rank or None,
            locality_weight=kwargs.pop("tune_locality"),
            locality_radius=kwargs.pop("tune_radius"),
            locality_samples=kwargs.pop("tune_locality_samples"),
            pixel_weight=kwargs.pop("tune_pixel_weight"),
            biases=kwargs.pop("tune_biases"),
            stop_psnr=kwargs.pop("tune_stop_psnr"),
            precision=kwargs.pop("tune_precision", "fp32"),
        )
    except ConfigError as e:
        raise click.BadParameter(str(e)) from None


def tuning_options(fn: F) -> F:
    """``--tune`` plus the tuning settings; the command receives ``tuning: TuningSettings | None``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        on = kwargs.pop("tune")
        settings = _settings(kwargs)
        return fn(*args, tuning=settings if on else None, **kwargs)

    for option in reversed(_setting_options(aliases=False)):
        wrapper = option(wrapper)
    wrapper = click.option("--tune", is_flag=True, help="Pivotal tuning after the projection (docs/tuning.md).")(
        wrapper
    )
    return wrapper  # type: ignore[return-value]


def tuning_settings_options(fn: F) -> F:
    """The tuning settings alone (``wplus tune``: ``--tune-steps`` or ``--steps``, ...); the command receives
    ``tuning: TuningSettings``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, tuning=_settings(kwargs), **kwargs)

    for option in reversed(_setting_options(aliases=True)):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


TUNING_FILE_HELP = "A tuning.safetensors (pivotal tuning) to render with; recorded with its SHA-256."


def tuning_file_option(fn: F) -> F:
    """``--tuning FILE`` for commands that render codes."""
    return click.option("--tuning", "tuning_path", type=INPUT_FILE, default=None, help=TUNING_FILE_HELP)(fn)


def apply_tuning_file(G: Any, path: Path | None) -> tuple[Any, dict[str, Any] | None]:
    """``G`` with the tuning in ``path`` applied, and the record entry (path, SHA-256, rank); ``(G, None)`` if no
    file. A tuning made on another model is a click error naming ``--tuning``."""
    if path is None:
        return G, None
    from wplus.loading import file_sha256
    from wplus.tuning import load_tuning

    try:
        tuning = load_tuning(path)
        tuned = tuning.apply(G)
    except WplusError as e:
        raise click.BadParameter(
            f"{path}: {e}" if str(path) not in str(e) else str(e), param_hint="'--tuning'"
        ) from None
    return tuned, {"path": str(path), "sha256": file_sha256(path), "rank": tuning.rank}
