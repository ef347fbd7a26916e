"""Latent and direction files that used to get through: NaN / infinite / absurd values and empty files.

Every reader (our latent.npz, a bare .npy, foreign .npz / .pt latents, every direction format) runs the one check
``wplus.io.latents.check_finite``, and every edit command turns what it raises into one line naming the file.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import wplus
from wplus.cli.main import cli
from wplus.edits import apply_direction, expression_transfer, load_direction
from wplus.errors import CheckpointError, ConfigError, WplusError
from wplus.formats.latents import load_foreign_latents
from wplus.io.checkpoint import save_generator
from wplus.io.latents import MAX_ABS_VALUE, Latent, check_finite, load_code, load_latent, save_latent

BAD = {"nan": math.nan, "inf": math.inf, "huge": 1e30}


@pytest.fixture
def ws(tiny_generator):
    G = tiny_generator
    return torch.randn(1, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(0))


def _spoil(t: torch.Tensor, value: float) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[3] = value
    return t


def test_check_finite_messages():
    check_finite(torch.zeros(3), "w")
    check_finite([1.0, -MAX_ABS_VALUE], "--strength")
    with pytest.raises(ConfigError, match=r"^a\.npz: latent w holds 1 NaN and 2 infinite values of 4 "):
        check_finite(torch.tensor([math.nan, math.inf, -math.inf, 0.0]), "latent w", "a.npz")
    with pytest.raises(ConfigError, match=r"--strength holds 1 NaN and 0 infinite values of 2 \(1, nan\)"):
        check_finite([1.0, math.nan], "--strength")
    with pytest.raises(
        ConfigError, match=r"a\.npy: direction has values up to 1e\+30, expected \|x\| <= 10000 \(codes"
    ):
        check_finite(np.array([1e30]), "direction", "a.npy")
    check_finite(1e30, "--x", max_abs=None)
    check_finite(np.arange(3), "ints")  # integers cannot be NaN


@pytest.mark.parametrize("kind", BAD)
def test_our_latent_npz_refuses_bad_values_in_w_z_and_noise(tmp_path, ws, kind, tiny_generator):
    value = BAD[kind]
    noise = [torch.zeros(1, 1, *n.shape[-2:]) for n in tiny_generator.noise_maps()]
    cases = {
        "w": Latent(ws=_spoil(ws, value)),
        "z": Latent(ws=ws, z=_spoil(torch.zeros(1, 8), value), space="z"),
        "noise": Latent(ws=ws, noise=[noise[0], _spoil(noise[1], value), *noise[2:]]),
    }
    for part, latent in cases.items():
        path = save_latent(tmp_path / f"{part}.npz", latent, npy=False)
        with pytest.raises(ConfigError) as e:
            load_latent(path)
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
        assert ("NaN" in str(e.value) or "infinite" in str(e.value)) if kind != "huge" else "1e+30" in str(e.value)


@pytest.mark.parametrize("kind", BAD)
def test_every_latent_reader_refuses_bad_values(tmp_path, ws, kind, tiny_generator):
    G, bad = tiny_generator, _spoil(ws, BAD[kind])
    np.save(tmp_path / "toolkit.npy", bad[0].numpy())
    np.savez(tmp_path / "dlatents.npz", dlatents=bad.numpy())
    torch.save(bad, tmp_path / "e4e.pt")
    torch.save({"img.png": {"latent": bad[0, 0], "noise": []}}, tmp_path / "rosinality.pt")
    for name in ("toolkit.npy", "e4e.pt", "rosinality.pt"):
        with pytest.raises(ConfigError, match=rf"^{tmp_path / name}: "):
            load_code(tmp_path / name, G)  # the readers edits and --init-latent use
    for name in ("toolkit.npy", "dlatents.npz", "e4e.pt", "rosinality.pt"):
        with pytest.raises(ConfigError, match=rf"^{tmp_path / name}: "):
            load_foreign_latents(tmp_path / name, num_ws=G.num_ws, w_dim=G.w_dim)
    with pytest.raises(ConfigError, match="projected.png: code holds 1 NaN"):  # a projector's output is checked too
        load_code(_image(tmp_path), G, projector=lambda p: Latent(ws=_spoil(ws, math.nan), source="projected.png"))


def _image(tmp_path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "projected.png")
    return tmp_path / "projected.png"


@pytest.mark.parametrize("kind", BAD)
def test_every_direction_reader_refuses_bad_values(tmp_path, kind, tiny_generator):
    G, value = tiny_generator, BAD[kind]
    vec = _spoil(torch.ones(G.num_ws, G.w_dim), value)
    wplus.save_direction(tmp_path / "ours.npz", vec)
    np.save(tmp_path / "toolkit.npy", vec.numpy())
    torch.save(vec[:1], tmp_path / "interfacegan.pt")
    comp = torch.ones(3, 1, G.w_dim)
    torch.save({"mean": torch.zeros(1, G.w_dim), "comp": comp, "std": torch.tensor([1.0, value, 1.0])},
               tmp_path / "ganspace.pt")  # fmt: skip
    for name in ("ours.npz", "toolkit.npy", "interfacegan.pt"):
        with pytest.raises(ConfigError, match=rf"^{tmp_path / name}: (\w+ )?direction "):
            load_direction(tmp_path / name, G)
    with pytest.raises(ConfigError, match="ganspace direction"):
        load_direction(tmp_path / "ganspace.pt", G, component=1)
    assert load_direction(tmp_path / "ganspace.pt", G, component=0).vector.isfinite().all()


@pytest.mark.parametrize("value", [math.nan, math.inf, -1e30])
def test_library_edits_refuse_bad_strengths_and_thresholds(ws, value):
    d = torch.ones(1, ws.shape[2])
    with pytest.raises(ConfigError, match="strength"):
        apply_direction(ws, d, [1.0, value])
    with pytest.raises(ConfigError, match="strength"):
        expression_transfer(ws, ws, ws + 1, strength=value)
    if not value < 0:
        with pytest.raises(ConfigError, match="threshold must be a finite number"):
            expression_transfer(ws, ws, ws + 1, threshold=value if math.isnan(value) else math.inf)


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".pt"])
def test_empty_files_name_the_file_and_the_problem(tmp_path, suffix, tiny_generator):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    for read in (lambda: load_code(path, tiny_generator), lambda: load_direction(path)):
        with pytest.raises(WplusError) as e:
            read()
        assert str(e.value).startswith(str(path)) and "empty" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="empty"):
        load_foreign_latents(path, num_ws=4, w_dim=8)


def test_wrong_container_is_one_line(tmp_path):
    np.save(tmp_path / "array.npy", np.zeros((2, 8), np.float32))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    with pytest.raises(WplusError, match="single array, not an .npz archive"):
        load_latent(tmp_path / "array.npz")
    with pytest.raises(WplusError, match="single array, not an .npz archive"):
        load_direction(tmp_path / "array.npz")


# --------------------------------------------------------------------------------------------------------------------
# The commands


@pytest.fixture
def workspace(tmp_path, tiny_generator, ws):
    G = tiny_generator
    model = save_generator(G, tmp_path / "tiny.safetensors")
    good = [save_latent(tmp_path / f"good{i}.npz", Latent(ws=ws + i), npy=False) for i in range(3)]
    bad = {k: save_latent(tmp_path / f"{k}.npz", Latent(ws=_spoil(ws, v)), npy=False) for k, v in BAD.items()}
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "empty.npy").write_bytes(b"")
    bad["empty"], bad["empty_npy"] = tmp_path / "empty.npz", tmp_path / "empty.npy"
    wplus.save_direction(tmp_path / "dir.npz", torch.ones(G.num_ws, G.w_dim))
    wplus.save_direction(tmp_path / "nan_dir.npz", _spoil(torch.ones(G.num_ws, G.w_dim), math.nan))
    (tmp_path / "empty_dir.npz").write_bytes(b"")
    return tmp_path, model, good, bad


def _run(args, out):
    res = CliRunner().invoke(cli, [*map(str, args), "--outdir", str(out), "--device", "cpu"])
    return res


def _assert_one_line_error(res, path, *words):
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "Aborted" not in res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {path}: ") or f"Error: {path}" in line, line
    for w in words:
        assert w in line, line


@pytest.mark.parametrize("kind", ["nan", "inf", "huge", "empty", "empty_npy"])
def test_edit_commands_refuse_bad_latent_files(workspace, kind):
    tmp, model, good, bad = workspace
    word = {"nan": "NaN", "inf": "infinite", "huge": "1e+30", "empty": "empty (0 bytes)", "empty_npy": "empty"}[kind]
    path = bad[kind]
    m = ["--model", model]
    commands = {
        "morph": ["morph", good[0], path, *m, "--frames", 2],
        "mix": ["mix", good[0], path, *m],
        "expression": ["expression", good[0], good[1], path, *m],
        "edit": ["edit", path, "--direction", tmp / "dir.npz", *m],
        "from-pairs": ["direction", "from-pairs", good[0], path, *m],
    }
    for name, args in commands.items():
        out = tmp / f"out_{name}_{kind}"
        _assert_one_line_error(_run(args, out), path, word)
        assert not out.exists() or not any(out.rglob("*.npz")), name  # nothing written from a bad input


def test_edit_and_direction_info_refuse_bad_directions(workspace):
    tmp, model, good, _ = workspace
    for name, word in (("nan_dir.npz", "NaN"), ("empty_dir.npz", "empty")):
        res = _run(["edit", good[0], "--direction", tmp / name, "--model", model], tmp / "e")
        _assert_one_line_error(res, tmp / name, word)
        res = CliRunner().invoke(cli, ["direction", "info", str(tmp / name)])
        _assert_one_line_error(res, tmp / name, word)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf,0", "1e30", "0:nan:3"])
def test_strength_must_be_finite(workspace, text):
    tmp, model, good, _ = workspace
    m = ["--model", model]
    for args in (["edit", good[0], "--direction", tmp / "dir.npz", *m], ["expression", *good, *m]):
        res = _run([*args, "--strength", text], tmp / "out")
        assert res.exit_code != 0 and "Traceback" not in res.output
        assert "--strength" in res.output.strip().splitlines()[-1]
        assert not (tmp / "out").exists()


def test_threshold_and_fps_must_be_finite(workspace):
    tmp, model, good, _ = workspace
    for args in (["expression", *good, "--threshold"], ["morph", *good[:2], "--fps"], ["mix", *good[:2], "--fps"]):
        for value in ("nan", "inf"):
            res = _run([*args, value, "--model", model], tmp / "out")
            flag = args[-1]
            assert res.exit_code == 2 and f"'{flag}'" in res.output and "not a finite number" in res.output
            assert "Traceback" not in res.output
    assert not (tmp / "out").exists()


def test_init_latent_empty_and_nan_files(workspace, tmp_path):
    from PIL import Image

    tmp, model, _, bad = workspace
    Image.new("RGB", (16, 16), (200, 100, 50)).save(tmp / "face.png")
    for kind, word in (("empty", "empty (0 bytes)"), ("nan", "NaN")):
        args = ["project", tmp / "face.png", "--model", model, "--steps", "0", "--perceptual-weight", "0",
                "--init-latent", bad[kind]]  # fmt: skip
        res = _run(args, tmp / f"p_{kind}")
        assert res.exit_code == 1 and "Aborted" not in res.output and "Traceback" not in res.output, res.output
        assert str(bad[kind]) in res.output and word in res.output


def test_the_latent_readers_live_in_io_latents():
    """Every module imports the readers from wplus.io.latents; the old edits/inputs.py is gone."""
    src = Path(wplus.__file__).parent
    assert not (src / "edits" / "inputs.py").exists()
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "wplus.edits.inputs" not in imported, path
    assert wplus.load_code is load_code
