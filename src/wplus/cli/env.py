"""``wplus env``: what a bug report needs to know about this installation."""

from __future__ import annotations

import platform
from collections.abc import Callable

import click
import torch

from wplus.cli.common import echo_json
from wplus.cli.help import WplusCommand
from wplus.extras import extras


def download_problem() -> str | None:
    """Why nothing can be downloaded (None when the servers of the default model and of VGG-16 can be reached)."""
    from wplus.hub import get_spec, network_problem
    from wplus.shipped import DEFAULT_MODEL

    return network_problem([get_spec(DEFAULT_MODEL).urls[0], get_spec("vgg16-imagenet").urls[0]])


def environment(*, probe: Callable[[], str | None] = download_problem) -> dict[str, object]:
    """Versions, devices, cache and extras; ``offline`` is True when ``probe`` says nothing can be downloaded."""
    from wplus import __version__
    from wplus.hub import cache_dir

    mps = getattr(torch.backends, "mps", None)
    problem = probe()
    return {
        "wplus": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "mps_available": bool(mps and mps.is_available()),
        "cpu_threads": torch.get_num_threads(),
        "cache_dir": str(cache_dir()),
        "offline": problem is not None,
        "network": "downloads possible" if problem is None else problem,
        "extras": {
            e.name: {"installed": e.installed, "missing": list(e.missing), "enables": e.enables} for e in extras()
        },
    }


def extras_lines(found: dict[str, dict]) -> list[str]:
    """One aligned line per extra: name, installed or what is missing, what it enables."""
    if not found:
        return ["  (unknown: wplus is not installed as a package, so no metadata lists them; pip install -e .)"]
    states = {n: "installed" if e["installed"] else f"missing ({', '.join(e['missing'])})" for n, e in found.items()}
    name_w = max(map(len, found))
    state_w = max(map(len, states.values()))
    return [f"  {n:<{name_w}}  {states[n]:<{state_w}}  {e['enables']}".rstrip() for n, e in found.items()]


@click.command("env", cls=WplusCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def env_cmd(as_json: bool) -> None:
    """Print versions, devices, cache folder, whether downloads are possible (offline) and installed extras."""
    info = environment()
    if as_json:
        echo_json(info)
        return
    found = info.pop("extras")
    width = max(map(len, info))
    for k, v in info.items():
        click.echo(f"{k:<{width}}  {v}")
    click.echo("extras (pip install 'wplus[NAME]')")
    for line in extras_lines(found):  # type: ignore[arg-type]
        click.echo(line)
