"""``wplus probe``: train the cartoon-face attribute probe, and score images, latents or generator samples with it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click
import torch

from wplus.cli.common import (
    DEVICE_CHOICES,
    FiniteFloatRange,
    echo_json,
    err,
    one_line_errors,
    open_model,
    parse_int_ranges,
    resolve_device,
)
from wplus.cli.help import WplusGroup
from wplus.errors import ImageError
from wplus.io.atomic import atomic_write, write_json
from wplus.progress import progress
from wplus.text import plural


@click.group("probe", cls=WplusGroup)
def probe_group() -> None:
    """Attribute probe for the cartoon faces: a small CNN reading smile, glasses, hair style, jaw, colours, ...

    \b
    Examples:
      wplus --threads 1 probe train --outdir probe/ --images 15000 --steps 2500
      wplus probe score face1.png face2.png
      wplus probe score --seeds 0-499 --model cartoon-faces-64 --out scores.csv
    """


@probe_group.command("train")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where to write.")
@click.option("--images", type=click.IntRange(2, 1_000_000), default=15_000, help="Drawn faces in the training pool.")
@click.option("--steps", type=click.IntRange(1), default=2500, help="Optimiser steps.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64)
@click.option("--lr", type=FiniteFloatRange(0, 1, min_open=True), default=2e-3, help="Peak AdamW learning rate.")
@click.option("--seed", type=click.IntRange(0), default=0, help="Seeds the weights, batch order and degradations.")
@click.option("--eval-images", type=click.IntRange(0), default=1000, help="Held-out faces for the metrics.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=250, help="Steps between training-state writes.")
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@one_line_errors
def train_cmd(
    outdir: Path,
    images: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    eval_images: int,
    checkpoint_every: int,
    device: str,
    as_json: bool,
) -> None:
    """Train a probe on freshly drawn faces; writes OUTDIR/probe.safetensors and OUTDIR/metrics.json.

    The run is resumable: OUTDIR/train-state.safetensors is written every --checkpoint-every steps, and the same
    command run again continues from it (with the same options) and ends with the same weights.

    \b
    Example:
      wplus --threads 1 probe train --outdir probe/ --images 15000 --steps 2500
    """
    from wplus import __version__
    from wplus.models.attribute_probe import save_probe
    from wplus.train.probe import train_probe

    dev = resolve_device(device)
    with progress(total=steps, desc="probe", unit="step") as bar:

        def callback(step: int, total: int, loss: float) -> None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")

        result = train_probe(
            images=images,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            eval_images=eval_images,
            device=dev,
            state_path=outdir / "train-state.safetensors",
            checkpoint_every=checkpoint_every,
            callback=callback,
        )
    training = {"wplus_version": __version__, "images": images, "steps": steps, "batch_size": batch_size, "lr": lr,
                "seed": seed, "eval_images": eval_images, "final_loss": result.history[-1][1]}  # fmt: skip
    path = save_probe(outdir / "probe.safetensors", result.probe, metadata={"metrics": result.metrics,
                                                                          "training": training})  # fmt: skip
    write_json(outdir / "metrics.json", {"training": training, "metrics": result.metrics})
    err(f"wrote {path}")
    if as_json:
        echo_json(result.metrics)
    elif result.metrics:
        click.echo(metrics_table(result.metrics))


def metrics_table(metrics: dict) -> str:
    """Rows 'attribute  clean  degraded' with accuracy for classes and R^2 for regressions."""
    clean, degraded = metrics["clean"], metrics.get("degraded", {})
    lines = [f"{'attribute':<16} {'metric':<8} {'clean':>7} {'degraded':>9}"]
    for name, m in clean.items():
        if not isinstance(m, dict):
            continue
        key = "accuracy" if "accuracy" in m else "r2"
        other = degraded.get(name, {}).get(key, float("nan"))
        lines.append(f"{name:<16} {key:<8} {m[key]:>7.4f} {other:>9.4f}")
    return "\n".join(lines)


@probe_group.command("score")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--seeds", default=None, help="Also score generator samples for these seeds, e.g. '0-499'.")
@click.option(
    "--model",
    default="cartoon-faces-64",
    help="Generator that renders latents and --seeds (the probe reads cartoon faces: the shipped model's).",
)
@click.option("--trunc", "truncation_psi", type=FiniteFloatRange(-2, 2), default=1.0, help="Truncation for --seeds.")
@click.option(
    "--probe", "probe_path", type=click.Path(path_type=Path), default=None, help="Probe file (default: shipped)."
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the scores (.csv/.json)."
)
@click.option("--device", type=DEVICE_CHOICES, default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON instead of a table.")
@one_line_errors
def score_cmd(
    inputs: tuple[Path, ...],
    seeds: str | None,
    model: str,
    truncation_psi: float,
    probe_path: Path | None,
    out: Path | None,
    device: str,
    as_json: bool,
) -> None:
    """Score INPUTS (images, or latents .npz/.npy rendered through --model) and/or generator samples (--seeds).

    Prints one row per input: every attribute in its natural unit (smile -1..1, glasses probability, hair_style
    0 bald / 1 short / 2 long / 3 fringe with its class probabilities, colours RGB / 255).

    \b
    Examples:
      wplus probe score face.png edited.png
      wplus probe score out/latent.npz --model cartoon-faces-64
      wplus probe score --seeds 0-499 --model cartoon-faces-64 --out scores.csv
    """
    from wplus.models.attribute_probe import flat_scores, load_probe

    if not inputs and seeds is None:
        raise click.UsageError("give image or latent files, or --seeds for generator samples")
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise click.BadParameter(f"got {out.name!r}, expected a .csv or .json file", param_hint="--out")
    dev = resolve_device(device)
    probe = load_probe(probe_path, device=dev)
    names, images = _load_inputs(inputs, seeds, model, truncation_psi, dev)
    pred = flat_scores(probe.predict(images))
    rows = [{"input": n, **{k: _number(v[i]) for k, v in pred.items()}} for i, n in enumerate(names)]
    if out is not None:
        _write_scores(out, rows)
        err(f"wrote {out} ({plural(len(rows), 'row')})")
    if as_json:
        echo_json(rows)
    else:
        click.echo(_table(rows))


def _number(v: torch.Tensor) -> float | int:
    return int(v) if v.dtype == torch.long else round(float(v), 4)


def _load_inputs(
    inputs: tuple[Path, ...], seeds: str | None, model: str, truncation_psi: float, dev: torch.device
) -> tuple[list[str], torch.Tensor]:
    from wplus.io.images import IMAGE_SUFFIXES, center_crop_resize, load_image, pil_to_tensor, to_rgb
    from wplus.io.latents import load_code

    names: list[str] = []
    images: list[torch.Tensor] = []
    G = None
    for path in inputs:
        if not path.is_file():
            raise ImageError(path, "no such file; expected an image or a latent (.npz, .npy)")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(pil_to_tensor(center_crop_resize(to_rgb(load_image(path)), 64)))
        else:
            G = G or open_model(model, device=dev).G
            latent = load_code(path, G)
            noise = [n.float().to(dev) for n in latent.noise] if latent.noise else None
            with torch.no_grad():
                images.append(G.synthesis(latent.ws.to(dev), noise=noise).cpu())
        names.append(str(path))
    if seeds is not None:
        from wplus.seeds import ws_from_seed

        G = G or open_model(model, device=dev).G
        for seed in parse_int_ranges(seeds, param_hint="--seeds"):
            _, ws = ws_from_seed(G, seed, truncation_psi=truncation_psi)
            with torch.no_grad():
                images.append(G.synthesis(ws, noise_mode="const").cpu())
            names.append(f"seed{seed:04d}")
    return names, torch.cat(images)


def _table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if not k.startswith("hair_style_p")]  # the argmax column says it
    width = max(len(r["input"]) for r in rows)
    head = f"{'input':<{width}} " + " ".join(f"{k:>10}" for k in keys[1:])
    body = [f"{r['input']:<{width}} " + " ".join(f"{r[k]:>10}" for k in keys[1:]) for r in rows]
    return "\n".join([head, *body])


def _write_scores(path: Path, rows: list[dict]) -> None:
    if path.suffix.lower() == ".json":
        write_json(path, rows)
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda p: p.write_text(buf.getvalue(), encoding="utf-8"))
