"""FFHQ alignment on a real photo (scikit-image's astronaut) with dlib: needs the align extra."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

dlib = pytest.importorskip("dlib")
skdata = pytest.importorskip("skimage.data")

import wplus.align  # noqa: E402
from wplus.align import LandmarkDetector, align_faces, paste_back, shape_predictor_path  # noqa: E402
from wplus.cli.main import cli  # noqa: E402
from wplus.errors import ImageError, NoFaceFoundError  # noqa: E402
from wplus.io.checkpoint import save_generator  # noqa: E402

SIZE = 256  # aligned output side used throughout (the recipe's 1024 would only be slower)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def portrait(astronaut) -> Image.Image:
    """A 250 px crop holding only the astronaut's face (her uniform gives a spurious detection)."""
    return astronaut.crop((100, 0, 350, 250))


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    return LandmarkDetector()


@pytest.fixture
def shared_detector(detector, monkeypatch):
    """CLI commands build their own detector; hand them the loaded one (dlib's model takes seconds to parse)."""
    monkeypatch.setattr(wplus.align, "LandmarkDetector", lambda **kw: detector)
    return detector


@pytest.fixture(scope="module")
def raw_dlib():
    """dlib itself, independent of the code under test."""
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))


def _dlib_landmarks(raw_dlib, img: Image.Image) -> np.ndarray:
    det, pred = raw_dlib
    arr = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    rects = sorted(det(arr, 1), key=lambda r: -r.area())
    assert rects, "dlib found no face"
    return np.array([(p.x, p.y) for p in pred(arr, rects[0]).parts()], dtype=float)


def _key_points(lm: np.ndarray) -> np.ndarray:
    """Left eye centre, right eye centre, mouth centre (the FFHQ alignment script's landmark groups)."""
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), (lm[48] + lm[54]) / 2])


def _expected_output_positions(lm: np.ndarray, n: int) -> np.ndarray:
    """Where the recipe puts the key points in an n x n output, written from the FFHQ alignment script's formulas.

    The output square spans the quad c +- x +- y: a source point p lands at n * (1/2 + (p - c).x / (2|x|^2)) across and
    n * (1/2 + (p - c).y / (2|y|^2)) down (pixel-centre coordinates on both sides).
    """
    el, er, mouth = _key_points(lm)
    eye_avg, e2e = (el + er) / 2, er - el
    e2m = mouth - eye_avg
    x = e2e - np.array([-e2m[1], e2m[0]])
    x = x / np.linalg.norm(x) * max(np.linalg.norm(e2e) * 2.0, np.linalg.norm(e2m) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + 0.1 * e2m
    rel = np.stack([el, er, mouth]) - c
    u = n * (0.5 + rel @ x / (2 * x @ x))
    v = n * (0.5 + rel @ y / (2 * y @ y))
    return np.stack([u, v], axis=1) - 0.5


def test_astronaut_yields_a_face(astronaut, detector):
    faces = detector.detect(astronaut)
    assert faces, "no face in the astronaut photo"
    left, top, right, bottom = faces[0].box
    assert 150 < (left + right) / 2 < 290 and 60 < (top + bottom) / 2 < 180  # the largest one is her face
    assert faces[0].points.shape == (68, 2)


def test_aligned_landmarks_sit_at_recipe_positions(portrait, detector, raw_dlib):
    (face,) = align_faces(portrait, detector=detector, face="largest", output_size=SIZE, transform_size=1024)
    assert face.image.size == (SIZE, SIZE)
    src = _dlib_landmarks(raw_dlib, portrait)
    expected = _expected_output_positions(src, SIZE)
    found = _key_points(_dlib_landmarks(raw_dlib, face.image))
    err = np.linalg.norm(found - expected, axis=1)
    assert err.max() < 4.0, f"eye/mouth centres off by {err} px (expected {expected}, found {found})"
    # Eyes level after rotation.
    assert abs(found[0, 1] - found[1, 1]) < 3.0


def test_paste_back_of_aligned_face_reproduces_photo(astronaut, detector):
    face = align_faces(astronaut, detector=detector, face="largest", output_size=SIZE, transform_size=1024)[0]
    pasted = paste_back(astronaut, face.image, face.transform)
    a = np.asarray(astronaut, dtype=float)
    b = np.asarray(pasted, dtype=float)
    # Source pixel centres in output coordinates (u, v) in [0, 1]^2, from the stored quad.
    q = face.quad
    jj, ii = np.mgrid[: a.shape[0], : a.shape[1]] + 0.5
    m = np.linalg.inv(np.column_stack([q[3] - q[0], q[1] - q[0]]))
    rel = np.stack([ii - q[0][0], jj - q[0][1]], axis=-1)
    uv = rel @ m.T
    inside = (uv > 0.15).all(-1) & (uv < 0.85).all(-1)
    outside = ((uv < -0.01) | (uv > 1.01)).any(-1)
    assert inside.sum() > 5000 and outside.sum() > 100000
    assert np.abs(a - b)[inside].mean() < 3.0
    assert np.array_equal(a[outside], b[outside])


def test_multiple_faces_named_largest_first(portrait, tmp_path, shared_detector):
    small = portrait.resize((150, 150), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (420, 260), (128, 128, 128))
    canvas.paste(small, (10, 50))
    canvas.paste(portrait, (165, 5))
    canvas.save(tmp_path / "pair.png")
    base = ["align", str(tmp_path / "pair.png"), "--size", "64", "--transform-size", "128"]
    res = CliRunner().invoke(cli, [*base, "--outdir", str(tmp_path / "out"), "--face", "all"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["pair_01.json", "pair_01.png", "pair_02.json", "pair_02.png"]
    first = json.loads((tmp_path / "out" / "pair_01.json").read_text())
    second = json.loads((tmp_path / "out" / "pair_02.json").read_text())
    assert first["box"][0] > 165 and second["box"][2] < 165  # the big copy first
    assert first["source_size"] == [420, 260] and first["output_size"] == 64
    assert Image.open(tmp_path / "out" / "pair_02.png").size == (64, 64)
    flags = ["--face", "largest", "--no-rotate", "--no-padding"]
    res = CliRunner().invoke(cli, [*base, "--outdir", str(tmp_path / "one"), *flags])
    assert res.exit_code == 0 and sorted(p.name for p in (tmp_path / "one").iterdir())[0] == "pair_01.json"
    assert len(list((tmp_path / "one").iterdir())) == 2
    one = json.loads((tmp_path / "one" / "pair_01.json").read_text())
    assert one["rotate"] is False and one["enable_padding"] is False
    assert one["quad"][0][0] == pytest.approx(one["quad"][1][0])  # axis-aligned: NW above SW


def test_no_face_error_and_batch_goes_on(portrait, detector, tmp_path, shared_detector):
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 120, dtype=np.uint8), (80, 1)))
    gradient.save(tmp_path / "gradient.png")
    with pytest.raises(NoFaceFoundError, match="gradient.png"):
        align_faces(tmp_path / "gradient.png", detector=detector)
    portrait.save(tmp_path / "face.jpg")
    (tmp_path / "cut.png").write_bytes((tmp_path / "gradient.png").read_bytes()[:60])
    files = [str(tmp_path / n) for n in ("gradient.png", "cut.png", "face.jpg")]
    res = CliRunner().invoke(cli, ["align", *files, "--outdir", str(tmp_path / "out"), "--size", "32", "--json"])
    assert json.loads(res.stdout[res.stdout.index("{") :])["failed"][0]["image"].endswith("gradient.png")
    assert res.exit_code == 1
    assert "gradient.png: no face found" in res.output and "cut.png" in res.output
    assert (tmp_path / "out" / "face_01.png").is_file() and (tmp_path / "out" / "face_01.json").is_file()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_odd_modes_align(portrait, detector, tmp_path, mode):
    img = portrait.convert("L").point(lambda v: v * 257, "I") if mode == "I;16" else portrait.convert(mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img, dtype=np.uint16))
    path = tmp_path / ("face.tif" if mode == "CMYK" else "face.png")
    img.save(path)
    faces = align_faces(path, detector=detector, output_size=32, transform_size=128)
    assert len(faces) == 1 and faces[0].image.mode == "RGB"


def test_exif_rotated_photo_aligns_upright(portrait, detector, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; display after turning 90 degrees clockwise
    portrait.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    (face,) = align_faces(tmp_path / "rot.jpg", detector=detector, output_size=32, transform_size=128)
    assert face.source_size == (250, 250)
    assert abs(face.transform.box[0] - 75) < 20  # where the face is in the upright photo


def test_large_image_detected_downscaled_landmarks_full_res(portrait, detector):
    big = portrait.resize((750, 750), Image.Resampling.LANCZOS)
    small_det = copy.copy(detector)  # shares the loaded models
    small_det.detect_max_side = 256
    (f_big, *_) = small_det.detect(big)
    (f_ref, *_) = detector.detect(portrait)
    assert f_big.box[2] - f_big.box[0] > 150  # the box was mapped back to full resolution
    assert np.abs(_key_points(f_big.points) / 3 - _key_points(f_ref.points)).max() < 3.0


def test_truncated_file_is_an_image_error(tmp_path, detector):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ImageError, match="bad.jpg"):
        align_faces(tmp_path / "bad.jpg", detector=detector)


def test_project_align_paste_back(portrait, tiny_generator, tmp_path, shared_detector):
    save_generator(tiny_generator, tmp_path / "g.safetensors")
    portrait.save(tmp_path / "me.png")
    args = ["project", str(tmp_path / "me.png"), "--model", str(tmp_path / "g.safetensors"), "--steps", "2"]
    args += ["--perceptual-weight", "0", "--device", "cpu", "--align", "--paste-back", "--outdir", str(tmp_path / "o")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "o" / "me_01"
    for name in ("target.png", "projection.png", "latent.npz", "align.json", "pasted.png"):
        assert (out / name).is_file(), name
    assert Image.open(out / "target.png").size == (16, 16)
    pasted = np.asarray(Image.open(out / "pasted.png"), dtype=float)
    photo = np.asarray(portrait, dtype=float)
    assert pasted.shape == photo.shape
    assert np.array_equal(pasted[:, :20], photo[:, :20])  # far from the face: untouched
    assert np.abs(pasted[90:130, 110:150] - photo[90:130, 110:150]).mean() > 5  # the face was replaced
    assert json.loads((out / "config.json").read_text())["preprocess"] == "ffhq-align, largest face"
