"""``wplus tune``: pivotal tuning of projection folders that ``wplus project`` wrote (without ``--tune``)."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from wplus.cli.common import DEVICE_CHOICES, err, one_line_errors, open_model, resolve_device
from wplus.cli.help import WplusCommand
from wplus.cli.projection_options import ProjectionChoice
from wplus.cli.tuning_options import tuning_settings_options
from wplus.errors import ConfigError
from wplus.io.atomic import write_json
from wplus.io.images import load_image, pil_to_tensor, save_image
from wplus.io.latents import load_latent
from wplus.precision import resolve_precision
from wplus.projection.outputs import is_tuned, summary_line, tuned_metrics, untuned_metrics
from wplus.projection.project import loss_terms
from wplus.projection.settings import ProjectionSettings
from wplus.text import plural
from wplus.tuning import TuningSettings, save_tuning, tune


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read it ({e}); is this a folder `wplus project` wrote?") from None


@click.command("tune", cls=WplusCommand)
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--model", type=str, default=None, help="Generator file or name (default: the one each folder's config.json names)."
)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option(
    "--overwrite", is_flag=True, help="Tune folders that are tuned already again, from their untuned code and model."
)
@tuning_settings_options
@one_line_errors
def tune_cmd(
    folders: tuple[Path, ...], model: str | None, device: str, overwrite: bool, tuning: TuningSettings
) -> None:
    """Tune the generator around each FOLDER's code (pivotal tuning, PTI): writes tuning.safetensors, makes
    projection.png the tuned render (the plain one becomes untuned.png) and adds before/after metrics.

    The loss is the one the projection used (config.json). A folder that fails is reported; the rest go on.
    A folder tuned already is refused unless --overwrite (which tunes the base model again, not the tuned one).
    The settings are spelt as on `wplus project --tune` (--tune-steps, ...); the short names (--steps, ...) work too.

    \b
    Example:
      wplus project photo.jpg --model ffhq.safetensors --space w --outdir out/
      wplus tune out/photo/ --tune-steps 350
    """
    dev = resolve_device(device)
    resolve_precision(tuning.precision, dev)  # bf16 where it would be emulated: one line, before any folder
    failed = []
    opened: dict[str, object] = {}
    for folder in folders:
        try:
            _tune_folder(folder, model, dev, tuning, opened, overwrite=overwrite)
        except (ConfigError, OSError) as e:
            failed.append(folder)
            line = str(e).splitlines()[0]
            err(f"failed: {line}" if str(folder) in line else f"failed: {folder}: {line}")
    if failed:
        raise click.ClickException(
            f"{len(folders) - len(failed)} of {plural(len(folders), 'folder')} tuned; {len(failed)} failed"
        )


def _tune_folder(
    folder: Path, model: str | None, dev: torch.device, tuning: TuningSettings, opened: dict, *, overwrite: bool
) -> None:
    config = _read_json(folder / "config.json")
    metrics = _read_json(folder / "metrics.json")
    if is_tuned(metrics) and not overwrite:
        raise ConfigError(f"{folder}: already tuned (tuning.safetensors); pass --overwrite to tune it again")
    name = model or config.get("model", {}).get("path")
    if not name:
        raise ConfigError(f"{folder}/config.json names no model file; pass --model")
    if name not in opened:
        opened[name] = open_model(name, device=dev)
    info = opened[name]
    want = config.get("model", {}).get("sha256")
    if want and want != info.sha256:
        raise ConfigError(f"{folder} was projected with model {want[:12]}, --model is {info.sha256[:12]}")
    latent = load_latent(folder / "latent.npz")
    target = pil_to_tensor(load_image(folder / "target.png")).to(dev)
    # The loss runs at the tuning's precision, not at the one the projection used (checked up front in tune_cmd).
    projected = ProjectionSettings.from_dict(config)
    choice = ProjectionChoice(projected.replace(precision=tuning.precision))
    loss, _ = choice.loss(dev, info, notice=err)
    G = info.G
    ws = latent.ws.to(dev)
    noise = [n.to(dev) for n in latent.noise] or None
    err(f"tuning {folder} ({plural(tuning.num_steps, 'step')}, rank {tuning.rank or 'full'})")
    t = tune(G, target, ws, loss=loss, noise=noise, base_sha256=info.sha256, **tuning.kwargs())
    with torch.no_grad():
        image = t.apply(G, check=False).synthesis(ws, noise_mode="const", noise=noise)
    save_tuning(t, folder / "tuning.safetensors")
    if not (folder / "untuned.png").exists():
        (folder / "projection.png").replace(folder / "untuned.png")
    save_image(image, folder / "projection.png")
    mask = _saved_mask(folder, target)
    metrics = tuned_metrics(untuned_metrics(metrics), t, loss_terms(loss, image, target, mask=mask)[0])
    write_json(folder / "metrics.json", metrics)
    config["tuning"] = {**tuning.kwargs(), "precision": t.info["precision"]}  # what ran ('auto' resolved)
    write_json(folder / "config.json", config)
    err(f"{folder}: {summary_line(metrics)} ({t.info['metrics']['seconds']:.1f} s)")


def _saved_mask(folder: Path, target: torch.Tensor) -> torch.Tensor | None:
    """The loss mask the projection used (mask.png, white = seen) as [1, 1, R, R] in [0, 1], so the tuned render is
    measured as the projection was; None without one."""
    if not (folder / "mask.png").is_file():
        return None
    return (pil_to_tensor(load_image(folder / "mask.png"))[:, :1].to(target.device) + 1) / 2
