"""Dataset runs of `wplus project`: inputs, the manifest and resume, kill -9, shards, batching, the Ray engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.datasets.inputs import expand_inputs
from wplus.datasets.manifest import ManifestWriter, Shard, read_manifests, summarize
from wplus.datasets.runner import DatasetProjector, Preprocess, RunSpec, WorkItem, batch_coupling, select_shard
from wplus.errors import ConfigError
from wplus.projection.outputs import FOLDER_FILES
from wplus.projection.project import project
from wplus.projection.settings import resolve_settings

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _image(path: Path, seed: int, size: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    args = ["weights", "random", "--resolution", "16", "--channel-base", "256", "--channel-max", "32"]
    args += ["--mapping-layers", "2", "--w-dim", "32", str(d / "tiny.safetensors")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return d / "tiny.safetensors"


@pytest.fixture
def dataset(tmp_path):
    """data/a.png, data/b.jpg, data/sub/c.png, plus files a folder run must skip."""
    data = tmp_path / "data"
    _image(data / "a.png", 0)
    _image(data / "b.jpg", 1)
    _image(data / "sub" / "c.png", 2)
    (data / "notes.txt").write_text("not an image")
    _image(data / ".hidden.png", 3)
    _image(data / "_skip" / "d.png", 4)
    return data


def _project(model, *args, steps=3):
    base = ["project", "--model", str(model), "--loss", "mse", "--steps", str(steps), "--w-avg-samples", "64"]
    return CliRunner().invoke(cli, [*base, *map(str, args)])


def _manifest(out: Path, name: str = "manifest.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def _folders(out: Path) -> list[str]:
    return sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("latent.npz") if ".partial" not in p.parts)


# ---- 1. inputs


def test_folders_globs_and_lists_expand(dataset, tmp_path):
    got = expand_inputs([dataset])
    assert [(im.path.relative_to(dataset).as_posix(), im.name) for im in got] == [
        ("a.png", "a"),
        ("b.jpg", "b"),
        ("sub/c.png", "sub/c"),
    ]
    globbed = expand_inputs([f"{dataset}/**/*.png"])
    assert [im.name for im in globbed] == ["d", "a", "c"]  # as the shell globs: _skip/ matches, .hidden not
    lst = tmp_path / "lists" / "l.txt"
    lst.parent.mkdir()
    lst.write_text(f"# the list\n../data/b.jpg\n\n{dataset / 'a.png'}\n../data/sub\n../data/b.jpg\n")
    assert [im.name for im in expand_inputs([f"@{lst}"])] == ["b", "a", "c"]  # relative to the list; once each
    twice = expand_inputs([dataset / "a.png", dataset / "sub" / "c.png", _image(tmp_path / "x" / "a.png", 5)])
    assert [im.name for im in twice] == ["a", "c", "a_2"]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("missing.png", "missing.png: no such file or folder"),
        ("empty", "empty: no image files in this folder or below"),
        ("@nolist.txt", "@{tmp}/nolist.txt: cannot read the list"),
        ("*.webp", "the pattern matches nothing"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, model, arg, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(ConfigError, match="expected|check"):
        expand_inputs([arg if not arg.startswith("@") else f"@{tmp_path / arg[1:]}"])
    res = _project(model, arg if not arg.startswith("@") else f"@{tmp_path / arg[1:]}", "--outdir", tmp_path / "o")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert message.format(tmp=tmp_path) in res.output and "IMAGES" in res.output
    assert not (tmp_path / "o").exists()  # nothing started


# ---- 2. manifest, resume, failures


def test_manifest_records_and_rerun_skips_done_images(model, dataset, tmp_path):
    out = tmp_path / "out"
    res = _project(model, dataset, "--outdir", out, "--batch-size", "2")
    assert res.exit_code == 0, res.output
    assert _folders(out) == ["a", "b", "sub/c"]
    records = _manifest(out)
    assert [r["status"] for r in records] == ["running", "running", "done", "done", "running", "done"]
    done = {Path(r["input"]).name: r for r in records if r["status"] == "done"}
    a = done["a.png"]
    assert a["input"] == str((dataset / "a.png").resolve()) and a["outputs"] == ["a"] and a["error"] is None
    assert len(a["input_sha256"]) == 64 and len(a["settings_sha256"]) == 64 and a["writer"] == "main"
    metrics = json.loads((out / "a" / "metrics.json").read_text())
    assert a["psnr"] == pytest.approx(metrics["psnr"]) and a["seconds"] > 0
    assert not (out / ".partial").exists()

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix != ".jsonl"}
    again = _project(model, dataset, "--outdir", out, "--json")
    assert again.exit_code == 0, again.output
    assert "skipped 3 of 3 images done earlier" in again.stderr
    assert json.loads(again.stdout)["skipped"] == 3 and len(_manifest(out)) == len(records)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # untouched

    _image(dataset / "b.jpg", 99)  # a changed image is redone, the others are not
    changed = _project(model, dataset, "--outdir", out)
    assert changed.exit_code == 0 and "skipped 2 of 3" in changed.stderr
    assert [Path(r["input"]).name for r in _manifest(out)[len(records) :]] == ["b.jpg", "b.jpg"]
    assert (out / "a" / "latent.npz").stat().st_mtime_ns == mtimes[out / "a" / "latent.npz"]

    more = _project(model, dataset, "--outdir", out, steps=4)  # changed settings: everything again
    assert more.exit_code == 0 and "skipped" not in more.stderr
    assert json.loads((out / "sub" / "c" / "metrics.json").read_text())["steps"] == 4
    over = _project(model, dataset, "--outdir", out, "--overwrite", steps=4)
    assert over.exit_code == 0 and "skipped" not in over.stderr

    summary = CliRunner().invoke(cli, ["manifest", str(out), "--json"])
    s = json.loads(summary.stdout)
    assert (s["images"], s["done"], s["failed"], s["running"]) == (3, 3, 0, 0)
    assert s["images_per_hour"] > 0 and s["bad_lines"] == 0
    text = CliRunner().invoke(cli, ["manifest", str(out)])
    assert (
        text.exit_code == 0 and "3 images: 3 done, 0 failed, 0 running" in text.output and "images/hour" in text.output
    )


def test_a_bad_image_fails_and_the_rest_finish(model, dataset, tmp_path):
    (dataset / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    out = tmp_path / "out"
    res = _project(model, dataset, "--outdir", out, "--batch-size", "4")
    assert res.exit_code == 1 and "3 of 4 images projected; 1 failed" in res.output and "Traceback" not in res.output
    assert _folders(out) == ["a", "b", "sub/c"]
    last = {Path(r["input"]).name: r for r in _manifest(out)}
    assert last["broken.png"]["status"] == "failed" and "broken.png" in last["broken.png"]["error"]
    assert "\n" not in last["broken.png"]["error"] and last["broken.png"]["outputs"] == []
    summary = CliRunner().invoke(cli, ["manifest", str(out)])
    assert "4 images: 3 done, 1 failed, 0 running" in summary.output and "failed: " in summary.output
    again = _project(model, dataset, "--outdir", out)  # a failed image is tried again, the done ones are not
    assert again.exit_code == 1 and "skipped 3 of 4" in again.stderr


def test_manifest_survives_a_line_cut_short(tmp_path):
    w = ManifestWriter(tmp_path)
    w.record(input="/x/a.png", input_sha256="1", settings_sha256="2", status="done", outputs=["a"])
    with open(w.path, "a") as f:
        f.write('{"input": "/x/b.png", "sta')  # what kill -9 mid-write can leave
    w.record(input="/x/b.png", input_sha256="1", settings_sha256="2", status="failed", error="b: broken")
    records, bad = read_manifests(tmp_path)
    assert [r.status for r in records] == ["done", "failed"] and bad == 1
    assert summarize(tmp_path)["failures"] == [{"input": "/x/b.png", "error": "b: broken"}]
    with pytest.raises(ConfigError, match="no manifest"):
        summarize(tmp_path / "elsewhere")


def test_kill_9_leaves_no_partial_folder_and_the_rerun_resumes(model, tmp_path):
    data = tmp_path / "data"
    for i in range(4):
        _image(data / f"im{i}.png", i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "wplus", "project", str(data), "--model", str(model), "--loss", "mse"]
    cmd += ["--steps", "100", "--w-avg-samples", "64", "--outdir", str(out)]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").exists() and '"done"' in (out / "manifest.jsonl").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {r["input"] for r in _manifest(out) if r["status"] == "done"}
    assert 1 <= len(done_before) < 4, "the run finished before it could be killed"
    for d in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert all((d / f).is_file() for f in FOLDER_FILES), f"{d.name} is half-written"
    mtimes = {d: (out / d / "latent.npz").stat().st_mtime_ns for d in _folders(out)}
    res = _project(model, data, "--outdir", out, steps=100)
    assert res.exit_code == 0, res.output
    assert f"skipped {len(done_before)} of 4" in res.stderr
    assert _folders(out) == [f"im{i}" for i in range(4)] and not (out / ".partial").exists()
    for d, t in mtimes.items():  # finished before the kill: kept
        name = f"{d}.png"
        if any(i.endswith(name) for i in done_before):
            assert (out / d / "latent.npz").stat().st_mtime_ns == t
    assert summarize(out)["done"] == 4


# ---- 3. shards


def test_shards_partition_the_set_and_merge(model, tmp_path):
    images = expand_inputs([_image(tmp_path / "data" / f"{i:02d}.png", i) for i in range(7)])
    for n in (1, 2, 3, 7, 9):
        parts = [select_shard(images, Shard(i, n)) for i in range(n)]
        keys = [im.key for part in parts for im in part]
        assert sorted(keys) == sorted(im.key for im in images)  # disjoint and complete
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        again = [select_shard(images[::-1], Shard(i, n)) for i in range(n)]  # whatever order they were named in
        assert [{im.key for im in p} for p in parts] == [{im.key for im in p} for p in again]
    out = tmp_path / "out"
    for i in range(2):
        res = _project(model, tmp_path / "data", "--outdir", out, "--shard", f"{i}/2")
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("manifest*")) == [
        "manifest.shard-0-of-2.jsonl",
        "manifest.shard-1-of-2.jsonl",
    ]
    assert _folders(out) == [f"{i:02d}" for i in range(7)]
    s = summarize(out)
    assert (s["images"], s["done"]) == (7, 7)
    whole = _project(model, tmp_path / "data", "--outdir", out)  # an unsharded rerun sees the shards' work
    assert whole.exit_code == 0 and "skipped 7 of 7" in whole.stderr
    bad = _project(model, tmp_path / "data", "--outdir", out, "--shard", "2/2")
    assert bad.exit_code == 2 and "--shard" in bad.output and "expected I from 0 to 1" in bad.output


# ---- batching


def test_results_do_not_depend_on_batching(tiny_generator, mse_loss, one_thread):
    torch.manual_seed(0)
    targets = torch.rand(3, 3, 16, 16) * 2 - 1
    settings = resolve_settings(num_steps=5, lr=0.05, w_avg_samples=64, loss="mse")
    assert batch_coupling(settings) is None
    together = project(tiny_generator, targets, loss=mse_loss, settings=settings).ws
    alone = torch.cat([project(tiny_generator, t[None], loss=mse_loss, settings=settings).ws for t in targets])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    coupled = settings.replace(init="random", seed=4)
    assert "random start codes" in batch_coupling(coupled)
    assert batch_coupling(coupled, start_code=True) is None


def test_coupled_settings_are_projected_one_at_a_time(tiny_generator, mse_loss, one_thread, tmp_path):
    settings = resolve_settings(num_steps=3, w_avg_samples=64, loss="mse", init="random", seed=4)
    spec = RunSpec("m", "tiny", "0" * 64, settings, Preprocess(16), batch_size=2)
    paths = [_image(tmp_path / f"{i}.png", i, 16) for i in range(2)]
    items = [WorkItem(str(p), str(p), p.stem, "x") for p in paths]
    proj = DatasetProjector(spec, G=tiny_generator, loss=mse_loss, lpips=None, device=torch.device("cpu"))
    outcomes = proj.run(items, tmp_path / "out", "main")
    assert [o.status for o in outcomes] == ["done", "done"]
    from wplus.io.images import load_image, pil_to_tensor

    for p in paths:
        alone = project(tiny_generator, pil_to_tensor(load_image(p)), loss=mse_loss, settings=settings).ws
        with np.load(tmp_path / "out" / p.stem / "latent.npz") as z:
            np.testing.assert_allclose(z["w"], alone.numpy(), atol=1e-6)


# ---- 4. the Ray engine


def test_without_ray_the_engine_says_how_to_install_it(model, dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where the extra is not installed
    res = _project(model, dataset, "--outdir", tmp_path / "out", "--engine", "ray")
    assert res.exit_code == 1 and "pip install 'wplus[ray]'" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = _project(model, dataset, "--outdir", tmp_path / "out", "--workers", "2")
    assert res.exit_code == 2 and "--workers apply to --engine ray" in res.output


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_latents(model, dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHONPATH", SRC)  # the actors import this tree's wplus
    (dataset / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert _project(model, dataset, "--outdir", local, steps=4).exit_code == 1
    res = _project(model, dataset, "--outdir", distributed, "--engine", "ray", "--workers", "2", steps=4)
    assert res.exit_code == 1 and "3 of 4 images projected; 1 failed" in res.output, res.output
    assert _folders(distributed) == _folders(local) == ["a", "b", "sub/c"]
    for name in _folders(local):
        with np.load(local / name / "latent.npz") as a, np.load(distributed / name / "latent.npz") as b:
            np.testing.assert_allclose(a["w"], b["w"], atol=1e-5, rtol=0)
    last = {Path(r["input"]).name: r for r in _manifest(distributed, "manifest.ray.jsonl")}
    assert last["broken.png"]["status"] == "failed" and "broken.png" in last["broken.png"]["error"]
    assert {r["status"] for n, r in last.items() if n != "broken.png"} == {"done"}
    assert not (distributed / ".partial").exists()
    again = _project(model, dataset, "--outdir", distributed, steps=4)  # the local engine resumes a Ray run
    assert "skipped 3 of 4" in again.stderr
