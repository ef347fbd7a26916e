"""The options of ``wplus project`` that run a dataset: resume, ``--shard``, and the Ray engine.

A decorated command receives one ``dataset: DatasetChoice`` argument instead of the separate options; the work
itself is the library's (:mod:`wplus.datasets`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from wplus.datasets.manifest import Shard
from wplus.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class ShardType(click.ParamType):
    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Shard:
        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)


@dataclass(frozen=True)
class DatasetChoice:
    """What the dataset options asked for."""

    overwrite: bool = False
    shard: Shard | None = None
    engine: str = "local"
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    ray_address: str | None = None


def dataset_options(fn: F) -> F:
    """Add ``--overwrite``, ``--shard``, ``--engine``, ``--workers``, ``--gpus-per-worker``, ``--cpus-per-worker``
    and ``--ray-address``; the command receives ``dataset: DatasetChoice``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = ("overwrite", "shard", "engine", "workers", "gpus_per_worker", "cpus_per_worker", "ray_address")
        choice = DatasetChoice(**{n: kwargs.pop("ds_" + n) for n in names})
        if choice.engine == "local":
            given = [flag for flag, v, d in _RAY_ONLY if getattr(choice, v) != d]
            if given:
                raise click.UsageError(f"{', '.join(given)} apply to --engine ray; add --engine ray or drop them")
        return fn(*args, dataset=choice, **kwargs)

    decorators = [
        click.option("--overwrite", "ds_overwrite", is_flag=True, help="Redo images the manifest says are done."),
        click.option(
            "--shard",
            "ds_shard",
            type=ShardType(),
            default=None,
            help="Project only shard I of N, I from 0 (Slurm: I = $SLURM_ARRAY_TASK_ID, N = $SLURM_ARRAY_TASK_COUNT).",
        ),
        click.option(
            "--engine",
            "ds_engine",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this process; ray: Ray Data actors (ray extra), on RAY_ADDRESS's cluster or a local one.",
        ),
        click.option(
            "--workers",
            "ds_workers",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="Ray: actors, each loading the generator and loss once.",
        ),  # fmt: skip
        click.option(
            "--gpus-per-worker",
            "ds_gpus_per_worker",
            type=click.FloatRange(0),
            default=0.0,
            show_default=True,
            help="Ray: GPUs per actor (0.5 packs two actors on a GPU).",
        ),  # fmt: skip
        click.option(
            "--cpus-per-worker",
            "ds_cpus_per_worker",
            type=click.FloatRange(0, min_open=True),
            default=1.0,
            show_default=True,
            help="Ray: CPUs per actor (its torch threads).",
        ),  # fmt: skip
        click.option(
            "--ray-address",
            "ds_ray_address",
            default=lambda: os.environ.get("RAY_ADDRESS"),
            show_default="$RAY_ADDRESS, else a local instance",
            help="Ray: the cluster to join ('auto' finds one started with `ray start` here).",
        ),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper  # type: ignore[return-value]


_RAY_ONLY = (
    ("--workers", "workers", 1),
    ("--gpus-per-worker", "gpus_per_worker", 0.0),
    ("--cpus-per-worker", "cpus_per_worker", 1.0),
)
