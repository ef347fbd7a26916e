"""wplus.io.plot: the line charts are real matplotlib PNGs of the asked size, and matplotlib stays optional (the
library, a projection without a plot and the commands' other options work without it; asking for a figure is one
line naming the extra)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wplus.errors import ConfigError
from wplus.io.plot import Panel, draw_panels, pyplot

SRC = Path(__file__).resolve().parents[1] / "src"


def test_panels_side_by_side_at_the_asked_size(tmp_path):
    xs = [0.5 * i for i in range(40)]
    panels = [
        Panel("PSNR", "seconds", "dB", {"psnr": (xs, [12 + 0.4 * i for i in range(40)])}),
        Panel(
            "loss",
            "seconds",
            "total",
            {"total": (xs, [2.0**-i for i in range(40)]), "flat": ([1.0], [0.5])},
            log_y=True,
        ),  # fmt: skip
    ]
    path = draw_panels(panels, tmp_path / "sub" / "chart.png", size=(400, 250))
    assert path == tmp_path / "sub" / "chart.png" and not list(path.parent.glob("*.tmp*"))
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape == (250, 800, 3)
    white = (img == 255).all(axis=-1)
    assert 0.5 < white.mean() < 0.99  # mostly background, but something is drawn
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)  # matplotlib's first colour, each panel's first curve
    assert blue[:, :400].sum() > 100 and blue[:, 400:].sum() > 100


def test_a_curve_with_nothing_drawable_is_left_out(tmp_path):
    """NaN and, on a log axis, values <= 0 are gaps; an empty or all-gap curve draws nothing and breaks nothing."""
    panel = Panel("t", "x", "y", {"empty": ([], []), "bad": ([0, 1], [0.0, -1.0]), "ok": ([0, 1, 2], [1, np.nan, 3])},
                  log_y=True)  # fmt: skip
    img = np.asarray(Image.open(draw_panels([panel], tmp_path / "c.png", size=(300, 200))).convert("RGB"))
    assert img.shape == (200, 300, 3)


def test_without_matplotlib_the_figure_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"history\.png .*pip install 'wplus\[plot\]'") as e:
        draw_panels([Panel("t", "x", "y", {})], tmp_path / "c.png", purpose="history.png (--plot)")
    assert "\n" not in str(e.value) and not (tmp_path / "c.png").exists()
    with pytest.raises(ConfigError, match="got no matplotlib, expected it for the figures"):
        pyplot()


def test_the_library_and_a_projection_without_plot_need_no_matplotlib(tmp_path):
    """A fresh interpreter where ``import matplotlib`` fails: wplus, its CLI and a projection folder are fine; the
    history plot, asked of the library or of ``wplus project --plot``, is a one-line ConfigError."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None
        import torch
        import wplus, wplus.cli.main, wplus.study
        from click.testing import CliRunner
        from wplus.errors import ConfigError
        from wplus.io.checkpoint import save_generator
        from wplus.models.stylegan2 import StyleGAN2Config, random_generator
        from wplus.projection.outputs import write_projection_folder
        class MSELoss:
            def prepare_target(self, target):
                return target
            def __call__(self, images, target):
                mse = (images - target).square().flatten(1).mean(1)
                return {{"mse": mse, "total": mse}}
        cfg = StyleGAN2Config(img_resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
        G = random_generator(cfg, seed=1)
        target = G.synthesis(G.mapping(torch.randn(1, 32, generator=torch.Generator().manual_seed(0)), None))
        r = wplus.project(G, target, loss=MSELoss(), num_steps=2)
        out = {str(tmp_path)!r}
        write_projection_folder(out + "/a", r, target=target)
        try:
            write_projection_folder(out + "/b", r, target=target, plot=True)
        except ConfigError as e:
            print("LIBRARY:", e)
        model = save_generator(G, out + "/g.safetensors")
        args = ["project", out + "/a/target.png", "--model", str(model), "--loss", "mse", "--steps", "1", "--plot",
                "--outdir", out + "/cli"]
        res = CliRunner().invoke(wplus.cli.main.cli, args)
        print("CLI:", res.exit_code, repr(res.output))
        print("MPL:", "matplotlib" in sys.modules and sys.modules["matplotlib"] is not None)
    """)
    env = {"PYTHONPATH": str(SRC), "WPLUS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "latent.npz").exists() and not (tmp_path / "a" / "history.png").exists()
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "wplus project --plot" in lines["LIBRARY"] and "pip install 'wplus[plot]'" in lines["LIBRARY"]
    code, output = lines["CLI"].split(" ", 1)
    assert code == "1" and "Traceback" not in output and output.count("\\n") == 1
    assert "--plot" in output and "pip install 'wplus[plot]'" in output
    assert not (tmp_path / "cli").exists()  # refused before anything was projected
    assert lines["MPL"] == "False"


def test_study_figures_share_the_one_pyplot():
    from wplus.study import plotting

    assert plotting.pyplot is pyplot


def test_cli_plot_draws_history_png(tmp_path, tiny_generator):
    from wplus.cli.main import cli
    from wplus.io.checkpoint import save_generator

    model = save_generator(tiny_generator, tmp_path / "g.safetensors")
    Image.new("RGB", (16, 16), (200, 120, 90)).save(tmp_path / "a.png")
    args = ["project", str(tmp_path / "a.png"), "--model", str(model), "--loss", "mse", "--steps", "3",
            "--w-avg-samples", "64", "--device", "cpu", "--plot", "--outdir", str(tmp_path / "out")]  # fmt: skip
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    img = Image.open(tmp_path / "out" / "a" / "history.png")
    assert img.format == "PNG" and img.size == (1040, 300)
