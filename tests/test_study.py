"""wplus study: every study end to end on a tiny generator, the exact transforms, defect regions, resuming, errors."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.formats._testing import random_discriminator
from wplus.io.checkpoint import save_discriminator, save_generator
from wplus.models.stylegan2 import StyleGAN2Config, random_generator
from wplus.models.stylegan2_discriminator import DiscriminatorConfig
from wplus.study import STUDIES
from wplus.study.regions import DEFECTS, PARTS, blank, defect_mask, landmark_masks, part_masks
from wplus.study.transforms import rotate, shift_pixels, translate, zoom_in, zoom_out

STEPS = ["--quick", "--steps", "2"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A 16 px generator file with a discriminator beside it (the offline loss reads its features)."""
    folder = tmp_path_factory.mktemp("model")
    cfg = StyleGAN2Config(img_resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
    G = random_generator(cfg, seed=1, noise_strength=0.1)
    path = save_generator(G, folder / "tiny.safetensors")
    D = random_discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32), seed=2)
    save_discriminator(D, folder / "tiny-D.safetensors")
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WPLUS_OFFLINE", "1")


def run(*args: str) -> object:
    return CliRunner().invoke(cli, ["study", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def studied(model, tmp_path_factory):
    """``studied(name)``: the study run once on the defaults (``--json``) into a folder of its own, shared by the tests
    that read its files and the one that reruns it (on a copy); returns (outdir, the run's result)."""
    runs: dict[str, tuple[Path, object]] = {}

    def get(name: str) -> tuple[Path, object]:
        if name not in runs:
            out = tmp_path_factory.mktemp(name)
            runs[name] = (out, run(name, *study_args(model, out), "--json"))
        return runs[name]

    return get


def study_args(model: Path, outdir: Path) -> list[str]:
    return ["--model", str(model), "--outdir", str(outdir), *STEPS, "--loss-resize", "32"]


@pytest.mark.parametrize("name", list(STUDIES))
def test_each_study_writes_its_four_files(name, studied):
    tmp_path, r = studied(name)
    assert r.exit_code == 0, r.output
    for f in ("results.csv", "results.md", "figure.png", "study.json"):
        assert (tmp_path / f).stat().st_size > 0, f
    with open(tmp_path / "results.csv") as f:
        header = next(csv.reader(f))
    assert set(STUDIES[name].columns) <= set(header), header
    record = json.loads((tmp_path / "study.json").read_text())
    assert len(record["model"]["sha256"]) == 64 and record["wplus_version"]
    assert all(len(i["sha256"]) == 64 for i in record["inputs"]) and record["inputs"]
    assert record["settings"]["num_steps"] == 2
    assert "discriminator" in (tmp_path / "results.md").read_text() or name == "resolution"  # the stand-in is said
    assert Image.open(tmp_path / "figure.png").format == "PNG"


def test_rerun_skips_finished_units_and_redoes_lost_ones(model, studied, tmp_path):
    done_once, r = studied("transforms")  # the first run, shared with the test above; rerun here on a copy
    shutil.copytree(done_once, tmp_path, dirs_exist_ok=True)
    first = json.loads(r.stdout)["transforms"]
    assert first["projected"] == 7 and first["reused"] == 0
    args = ["transforms", *study_args(model, tmp_path), "--json"]
    again = json.loads(run(*args).stdout)["transforms"]
    assert again["projected"] == 0 and again["reused"] == 7
    # A run killed mid-way: what had not been marked done (the JSON is written last) is redone, nothing else.
    done = sorted((tmp_path / "units" / "transforms").glob("*/*.json"))
    done[0].unlink()
    third = json.loads(run(*args).stdout)["transforms"]
    assert third["projected"] == 1 and third["reused"] == 6
    other = json.loads(run(*args, "--steps", "3").stdout)["transforms"]
    assert other["projected"] == 7  # other settings: other units


def test_translation_is_a_shift():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    right = translate(x, 3)
    assert torch.equal(right[..., 3:], x[..., :-3]) and torch.all(right[..., :3] == -1)
    left = translate(x, -5)
    assert torch.equal(left[..., :-5], x[..., 5:]) and torch.all(left[..., -5:] == -1)
    assert shift_pixels(1024, 140 / 1024) == 140 and shift_pixels(64, 140 / 1024) == 9


def test_rotations_and_zooms_are_exact():
    x = torch.rand(3, 16, 16)
    assert torch.equal(rotate(rotate(x, 180), 180), x)
    assert torch.equal(rotate(rotate(rotate(rotate(x, 90), 90), 90), 90), x)
    assert torch.equal(rotate(x, 180), x.flip(-1).flip(-2))
    zin = zoom_in(x)
    assert torch.equal(zin[:, ::2, ::2], x[:, 4:12, 4:12]) and torch.equal(zin[:, 1::2, 1::2], x[:, 4:12, 4:12])
    assert torch.allclose(zoom_out(zin)[:, 4:12, 4:12], x[:, 4:12, 4:12])
    assert torch.all(zoom_out(x)[:, :4] == -1)
    with pytest.raises(ConfigError, match="multiple of 90"):
        rotate(x, 45)


def test_defect_regions_blank_only_their_pixels():
    from wplus.data.faces import HELD_OUT_SEED_BASE, face_array, sample_attributes

    seed = HELD_OUT_SEED_BASE + 7000
    img = torch.from_numpy(face_array(seed, size=64).copy()).permute(2, 0, 1).float() / 127.5 - 1
    masks = part_masks(sample_attributes(seed), 64)
    for d in DEFECTS:
        m = defect_mask(masks, d) > 0
        out = blank(img, m.float())
        assert torch.equal(out[:, ~m], img[:, ~m])
        if m.any():
            assert (out[:, m] == out[:, m][:, :1]).all()  # one colour over the region
    assert not (masks["eyes"].bool() & masks["mouth"].bool()).any()
    assert not (masks["nose"].bool() & masks["mouth"].bool()).any()


def test_bad_inputs_get_one_line(model, tmp_path):
    r = CliRunner().invoke(cli, ["study", "tables", "--outdir", str(tmp_path)])
    assert r.exit_code != 0 and "unknown study 'tables'" in r.output
    empty = tmp_path / "cats"
    empty.mkdir()
    r = CliRunner().invoke(cli, ["study", "classes", str(empty), "--model", str(model), "--outdir", str(tmp_path)])
    assert r.exit_code != 0 and f"{empty}: no images" in r.output
    assert "Traceback" not in r.output
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    Image.new("RGB", (20, 20), (200, 150, 120)).save(photos / "a.png")
    Image.new("L", (30, 30), 255).save(masks / "a-eyes.png")
    args = ["study", "defects", str(photos), "--masks", str(masks), "--model", str(model), "--outdir", str(tmp_path)]
    r = CliRunner().invoke(cli, [*args, *STEPS])
    assert r.exit_code != 0 and "a-eyes.png: mask is 30x30, expected 20x20" in r.output
    assert len([line for line in r.output.splitlines() if "mask" in line]) == 1


def test_figures_need_matplotlib_only_when_drawn(monkeypatch, model, tmp_path):
    from wplus.study.plotting import pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'wplus\[plot\]'"):
        pyplot()
    # The command says so in one line before it projects anything.
    r = CliRunner().invoke(cli, ["study", "defects", *study_args(model, tmp_path / "out")])
    assert r.exit_code == 1 and "wplus study's figure.png" in r.output and "pip install 'wplus[plot]'" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# ---- defect regions from the alignment landmarks


def _face_points(cx: float, cy: float, s: float) -> np.ndarray:
    """68 dlib-ordered points of an upright face centred at (cx, cy), ``s`` = half the distance between the eyes."""
    p = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    p[0:17] = np.stack([cx + 2 * s * np.cos(t), cy + 0.4 * s + 2.2 * s * np.sin(t)], 1)
    for side, brow, eye in ((-1, range(17, 22), range(36, 42)), (1, range(22, 27), range(42, 48))):
        ex = cx + side * s
        p[list(brow)] = np.stack([ex + np.linspace(-0.5, 0.5, 5) * s, np.full(5, cy - 0.45 * s)], 1)
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        p[list(eye)] = np.stack([ex + 0.35 * s * np.cos(a), cy + 0.15 * s * np.sin(a)], 1)
    p[27:31] = np.stack([np.full(4, cx), cy + np.linspace(0.0, 0.9, 4) * s], 1)  # bridge down to the tip
    p[31:36] = np.stack([cx + np.linspace(-0.35, 0.35, 5) * s, np.full(5, cy + 1.05 * s)], 1)  # nostrils
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    p[48:60] = np.stack([cx - 0.8 * s * np.cos(a), cy + 1.6 * s + 0.3 * s * np.sin(a)], 1)  # 48 left, 54 right
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    p[60:68] = np.stack([cx - 0.6 * s * np.cos(a), cy + 1.6 * s + 0.1 * s * np.sin(a)], 1)
    return p


def _box(size: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """0/1 mask of the pixels whose centres (x = column, y = row) lie in the box, edges included."""
    c = np.arange(size)
    return ((c[:, None] >= y0) & (c[:, None] <= y1) & (c[None, :] >= x0) & (c[None, :] <= x1)).astype(np.float32)


def test_landmark_masks_cover_their_parts_and_only_them():
    lm = _face_points(32, 26, 10)  # eyes' centres 20 px apart
    masks = {k: v.numpy() for k, v in landmark_masks(lm, 64, pad=0.0).items()}
    # Each eye with its brow: the brow's x (centre +- 5) and y (21.5), the eye's lowest point (26 + 1.5 sin 60deg);
    # the mouth: x 32 +- 8, y 42 +- 3; the nose: the nostrils' x (32 +- 3.5), from the bridge (26) to them (36.5).
    low = 26 + 1.5 * np.sin(np.pi / 3)
    eyes = np.maximum(_box(64, 17, 21.5, 27, low), _box(64, 37, 21.5, 47, low))
    assert np.array_equal(masks["eyes"], eyes)
    assert np.array_equal(masks["mouth"], _box(64, 24, 39, 40, 45))
    nose = _box(64, 28.5, 26, 35.5, 36.5) * (1 - eyes) * (1 - masks["mouth"])
    assert np.array_equal(masks["nose"], nose) and nose[30:36, 32].all()
    # The default pad grows each box by 0.08 x 20 = 1.6 px a side; the nose never overlaps the eyes or the mouth.
    grown = {k: v.numpy() for k, v in landmark_masks(lm, 64).items()}
    assert np.array_equal(grown["mouth"], _box(64, 22.4, 37.4, 41.6, 46.6))
    assert not (grown["nose"] * (grown["eyes"] + grown["mouth"])).any() and grown["nose"].sum() > 0
    with pytest.raises(ConfigError, match=r"\[68, 2\]"):
        landmark_masks(lm[:5], 64)


def test_landmarks_map_into_the_aligned_square_exactly():
    from wplus.align import AlignTransform, face_landmarks

    lm = _face_points(130, 90, 25) + np.random.default_rng(0).normal(0, 3, (68, 2))
    x0, y0, side = 70.0, 40.0, 160.0  # an axis-aligned square quad: the map is a scale and a shift
    quad = np.array([[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]])
    t = AlignTransform(quad=quad, source_size=(300, 240), output_size=1024, landmarks=lm)
    expected = (lm + 0.5 - [x0, y0]) * (64 / side) - 0.5
    assert np.allclose(face_landmarks(t, 64), expected, atol=1e-9, rtol=0)
    with pytest.raises(ConfigError, match="no landmarks"):
        face_landmarks(AlignTransform(quad=quad, source_size=(300, 240), output_size=64), 64)


def test_mapped_landmarks_land_on_the_aligned_pixels():
    """align_face on a tilted face: three marked landmarks end up where face_landmarks says (within a pixel)."""
    from wplus.align import align_face, face_landmarks

    centre = np.array([150.0, 120.0])
    turn = np.deg2rad(12)
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    lm = (_face_points(0, 0, 22) @ rot.T) + centre
    img = np.zeros((260, 300, 3), np.uint8)
    marked = (36, 30, 54)
    for k, i in enumerate(marked):
        x, y = np.rint(lm[i]).astype(int)
        img[y - 2 : y + 3, x - 2 : x + 3, k] = 255  # one channel per landmark
    face = align_face(Image.fromarray(img), lm, output_size=64, transform_size=256)
    out = np.asarray(face.image).astype(np.float64)
    where = face_landmarks(face.transform, 64)
    for k, i in enumerate(marked):
        w = out[..., k] * (out[..., k] > 40)
        ys, xs = np.nonzero(w)
        seen = np.array([(xs * w[ys, xs]).sum(), (ys * w[ys, xs]).sum()]) / w[ys, xs].sum()
        assert np.abs(seen - where[i]).max() < 1.0, (i, seen, where[i])


def _aligned_folder(folder: Path, size: int) -> tuple[Path, object]:
    from wplus.align import align_face

    folder.mkdir(parents=True)
    lm = _face_points(100, 90, 24)
    face = align_face(Image.new("RGB", (200, 200), (190, 140, 120)), lm, output_size=32, transform_size=64)
    face.image.save(folder / "me_01.png")
    face.transform.save(folder / "me_01.json")
    Image.new("RGB", (size, size), (90, 90, 90)).save(folder / "plain.png")  # no transform beside it
    Image.new("RGB", (size, size), (90, 90, 90)).save(folder / "other.png")
    (folder / "other.json").write_text('{"something": "else"}')  # a JSON that is not an alignment
    return folder, face.transform


def test_item_regions_take_the_alignment_landmarks_when_a_transform_is_beside(tmp_path):
    from types import SimpleNamespace

    from wplus.align import face_landmarks
    from wplus.study.inputs import items_from_paths
    from wplus.study.studies import item_regions

    folder, transform = _aligned_folder(tmp_path / "aligned", 16)
    ctx = SimpleNamespace(G=SimpleNamespace(img_resolution=16), options={}, cache={})
    items = {it.name: it for it in items_from_paths([folder], 16)}
    masks, source = item_regions(ctx, items["aligned/me_01"])
    assert "alignment landmarks" in source
    expected = landmark_masks(face_landmarks(transform, 16), 16)
    assert all(torch.equal(masks[p], expected[p]) for p in PARTS) and masks["eyes"].any()
    for name in ("aligned/plain", "aligned/other"):
        assert "average drawn face" in item_regions(ctx, items[name])[1]


def test_defects_study_says_its_regions_came_from_the_landmarks(model, tmp_path):
    folder, _ = _aligned_folder(tmp_path / "aligned", 16)
    (folder / "plain.png").unlink()
    (folder / "other.png").unlink()
    r = run("defects", str(folder), "--model", str(model), "--outdir", str(tmp_path / "out"), *STEPS)
    assert r.exit_code == 0, r.output
    assert "regions from the alignment landmarks" in (tmp_path / "out" / "results.md").read_text()


def test_reembed_rerun_reuses_every_round_when_renders_differ_in_their_last_bits(model, studied, tmp_path, monkeypatch):
    """Round k+1 embeds round k's render as an 8-bit image, so a rerun whose float renders differ slightly (another
    thread count) still finds the same inputs and recomputes nothing."""
    from wplus.study import studies

    done_once, r = studied("reembed")
    shutil.copytree(done_once, tmp_path, dirs_exist_ok=True)
    first = json.loads(r.stdout)["reembed"]
    assert first["projected"] > 0 and first["reused"] == 0
    exact = studies.render
    monkeypatch.setattr(studies, "render", lambda G, ws: exact(G, ws) + 1e-6)  # last-bit noise, no pixel changes
    again = json.loads(run("reembed", *study_args(model, tmp_path), "--json").stdout)["reembed"]
    assert again["projected"] == 0 and again["reused"] == first["projected"]
