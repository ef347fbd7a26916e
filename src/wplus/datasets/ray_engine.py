"""The Ray engine: the work of :func:`~wplus.datasets.runner.run_local`, spread over Ray Data actors.

The images to do become a Ray dataset of rows (path, name, hashes), one block per batch, and
``Dataset.map_batches`` runs :class:`RayProjector` on them: a callable class, so each actor loads the generator and
builds the loss once, in ``__init__``, and then projects batch after batch with the same
:class:`~wplus.datasets.runner.DatasetProjector` the local engine uses (same code, same results). Actors write each
image's folder into OUTDIR themselves (a shared filesystem on a cluster) and return one outcome row per image; the
driver, the only writer of the manifest (``writer='ray'``), records them as they arrive. A failing image is
``failed`` in its row; an actor that dies leaves its images ``running``, and the next run redoes them.

Ray is an optional dependency (``pip install 'wplus[ray]'``): nothing here imports it before a run asks for it.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from wplus.datasets.manifest import ManifestWriter
from wplus.datasets.runner import (
    DatasetProjector,
    Outcome,
    Plan,
    RunSpec,
    WorkItem,
    clear_partial,
    pick_device,
)
from wplus.errors import ConfigError
from wplus.text import plural

__all__ = ["RayOptions", "RayProjector", "run_ray", "import_ray"]

_COLUMNS = ("input", "path", "name", "input_sha256")


@dataclass(frozen=True)
class RayOptions:
    """Actors (``workers``), the resources each asks for, and the cluster (None: ``RAY_ADDRESS`` was not set, so
    a local instance is started; 'auto': the cluster ``ray start`` began on this machine)."""

    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    address: str | None = None
    init_kwargs: tuple[tuple[str, Any], ...] = ()  # more ray.init arguments for a local instance (tests: num_cpus)


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--engine ray needs Ray with Ray Data, which is not installed: pip install 'wplus[ray]'"
        ) from None
    return ray


class RayProjector:
    """The callable class ``map_batches`` runs: one per actor, the model loaded once per actor."""

    def __init__(self, spec: RunSpec, outdir: str, writer: str, device: str, threads: int):
        import torch

        from wplus.runtime import tune_cpu_allocator

        tune_cpu_allocator()
        torch.set_num_threads(max(1, threads))
        self.projector = DatasetProjector.load(spec, pick_device(device))
        self.outdir, self.writer = outdir, writer

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = len(batch["input"])
        items = [WorkItem(*(str(batch[c][i]) for c in _COLUMNS)) for i in range(rows)]
        outcomes = self.projector.run(items, self.outdir, self.writer)
        return {"outcome": [json.dumps(asdict(o), default=str) for o in outcomes]}


def _blocks_argument(from_items: Callable[..., Any]) -> str:
    """Ray >= 2.10 calls the number of blocks ``override_num_blocks``; 2.9 called it ``parallelism``."""
    return "override_num_blocks" if "override_num_blocks" in inspect.signature(from_items).parameters else "parallelism"


def run_ray(
    plan: Plan,
    spec: RunSpec,
    options: RayOptions,
    *,
    device: str = "auto",
    notice: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Project ``plan.todo`` with Ray Data and record every image in ``OUTDIR/manifest.ray.jsonl``.

    The manifest marks the images ``running`` when the job is handed to Ray, and ``done`` / ``failed`` as their
    rows come back. A Ray error that ends the job (an actor lost for good, say) is re-raised as one line after the
    rows that came back are recorded; the images still ``running`` are redone by the next run.

    Raises:
        ConfigError: Ray is not installed, or the job failed.
    """
    ray = import_ray()
    plan.writer = "ray"
    outdir = plan.outdir
    writer = ManifestWriter(outdir, plan.writer) if plan.manifest else None
    clear_partial(outdir, plan.writer)
    if not plan.todo:
        return []
    started_here = not ray.is_initialized()
    if started_here:
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if options.address:
            ray.init(address=options.address, **quiet)
        else:
            ray.init(address="local", include_dashboard=False, **quiet, **dict(options.init_kwargs))
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines would drown the per-image ones
    try:
        return _run(ray, plan, spec, options, device, writer, notice)
    finally:
        if started_here:
            ray.shutdown()


def _run(
    ray: Any,
    plan: Plan,
    spec: RunSpec,
    options: RayOptions,
    device: str,
    writer: ManifestWriter | None,
    notice: Callable[[str], None] | None,
) -> list[Outcome]:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    rows = [{c: getattr(it, c) for c in _COLUMNS} for it in plan.todo]
    started = time.time()
    if writer is not None:
        for it in plan.todo:
            writer.record(
                input=it.input,
                input_sha256=it.input_sha256,
                settings_sha256=plan.settings_sha256,
                status="running",
                started=started,
            )
    blocks = -(-len(rows) // spec.batch_size)  # one block per batch: every actor gets work from the start
    ds = ray.data.from_items(rows, **{_blocks_argument(ray.data.from_items): blocks})
    ds = ds.map_batches(
        RayProjector,
        fn_constructor_kwargs={
            "spec": spec,
            "outdir": str(plan.outdir),
            "writer": plan.writer,
            "device": device,
            "threads": max(1, int(options.cpus_per_worker)),
        },
        batch_size=spec.batch_size,
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_gpus=options.gpus_per_worker,
        num_cpus=options.cpus_per_worker,
    )
    outcomes: list[Outcome] = []
    try:
        for row in ds.iter_rows():
            o = Outcome(**json.loads(row["outcome"]))
            if writer is not None:
                writer.record(**o.record_fields(plan.settings_sha256))
            if notice is not None:
                for r in o.results:
                    notice(f"{r['image']}: psnr {r['psnr']:.2f} dB -> {r['outdir']}")
                if o.status == "failed":
                    notice(f"failed: {o.error}")
            outcomes.append(o)
    except Exception as e:  # Ray wraps worker errors in its own types; one line, and the manifest keeps the rest
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise ConfigError(
            f"the Ray job stopped after {len(outcomes)} of {plural(len(rows), 'image')} ({type(e).__name__}: {first}); "
            "rerun the same command to redo the rest"
        ) from None
    clear_partial(plan.outdir, plan.writer)
    return outcomes
