"""Which faces `align` and `project --align` keep: the largest by default; with --face all, every face but those far
smaller than the largest (--min-face-ratio). A fake detector stands in for dlib."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import wplus.align
from wplus.align import DEFAULT_MIN_FACE_RATIO, FaceLandmarks, align_faces, face_size, select_faces
from wplus.cli.main import cli
from wplus.errors import ConfigError
from wplus.io.checkpoint import save_generator

# (centre x, centre y, eye distance) in a 200 x 120 photo: the subject, a second person, a badge on the subject.
FACES = [(60.0, 60.0, 40.0), (150.0, 50.0, 20.0), (70.0, 100.0, 6.0)]


def _face(cx: float, cy: float, eyes: float) -> FaceLandmarks:
    pts = np.zeros((68, 2))
    pts[36:42] = (cx - eyes / 2, cy - eyes / 4)
    pts[42:48] = (cx + eyes / 2, cy - eyes / 4)
    pts[48], pts[54] = (cx - eyes / 3, cy + eyes / 2), (cx + eyes / 3, cy + eyes / 2)
    return FaceLandmarks(points=pts, box=(cx - eyes, cy - eyes, cx + eyes, cy + eyes))


class ThreeFaces:
    def __init__(self, **kwargs):
        pass

    def detect(self, image):
        return [_face(*f) for f in FACES]  # largest first, as LandmarkDetector.detect orders them


@pytest.fixture
def photo(tmp_path, monkeypatch):
    monkeypatch.setattr(wplus.align, "LandmarkDetector", ThreeFaces)
    Image.new("RGB", (200, 120), (120, 100, 90)).save(tmp_path / "crew.png")
    return tmp_path / "crew.png"


def test_face_size_is_the_ffhq_crop_side():
    assert face_size(_face(60, 60, 40).points) == pytest.approx(2 * 2 * 40)  # twice the eye distance, doubled
    sizes = [face_size(_face(*f).points) for f in FACES]
    assert sizes[1] / sizes[0] == pytest.approx(0.5) and sizes[2] / sizes[0] < DEFAULT_MIN_FACE_RATIO


def test_select_faces_keeps_the_largest_or_all_but_the_small_ones():
    found = [_face(*f) for f in FACES]
    kept, dropped = select_faces(found)
    assert kept == found[:1] and dropped == found[1:]  # default: the largest
    kept, dropped = select_faces(found, face="all")
    assert kept == found[:2] and dropped == found[2:]
    assert select_faces(found, face="all", min_face_ratio=0) == (found, [])
    assert select_faces(found, face="all", min_face_ratio=0.6) == (found[:1], found[1:])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="min_face_ratio"):
            select_faces(found, face="all", min_face_ratio=bad)
    with pytest.raises(ConfigError, match="face='both'"):
        select_faces(found, face="both")  # type: ignore[arg-type]


def test_align_faces_says_which_faces_it_skipped(photo):
    lines = []
    faces = align_faces(photo, detector=ThreeFaces(), face="all", output_size=16, transform_size=32,
                        notice=lines.append)  # fmt: skip
    assert [f.transform.face_index for f in faces] == [1, 2]
    assert len(lines) == 1 and "crew.png: skipped 1 face smaller than 0.25 of the largest" in lines[0]
    assert len(align_faces(photo, detector=ThreeFaces(), output_size=16, transform_size=32, notice=lines.append)) == 1
    assert len(lines) == 1  # --face largest skips the others by design: nothing to say


def _align(photo, outdir, *args):
    args = ["align", str(photo), "--outdir", str(outdir), "--size", "16", "--transform-size", "32", *args]
    return CliRunner().invoke(cli, args)


def test_align_cli_largest_by_default_all_above_the_ratio_or_every_face(photo, tmp_path):
    def pngs(folder):
        return sorted(p.name for p in folder.glob("*.png"))

    res = _align(photo, tmp_path / "default")
    assert res.exit_code == 0, res.output
    assert pngs(tmp_path / "default") == ["crew_01.png"]
    res = _align(photo, tmp_path / "all", "--face", "all")
    assert res.exit_code == 0, res.output
    assert pngs(tmp_path / "all") == ["crew_01.png", "crew_02.png"] and "skipped 1 face smaller" in res.output
    second = json.loads((tmp_path / "all" / "crew_02.json").read_text())
    assert second["box"][0] > 100  # the second person, not the badge
    res = _align(photo, tmp_path / "every", "--face", "all", "--min-face-ratio", "0")
    assert res.exit_code == 0 and pngs(tmp_path / "every") == ["crew_01.png", "crew_02.png", "crew_03.png"]
    res = _align(photo, tmp_path / "bad", "--min-face-ratio", "0.1")
    assert res.exit_code == 2 and "--min-face-ratio applies to --face all" in res.output
    res = _align(photo, tmp_path / "bad", "--face", "all", "--min-face-ratio", "2")
    assert res.exit_code == 2 and "--min-face-ratio" in res.output and not (tmp_path / "bad").exists()


def test_project_align_takes_the_largest_face_unless_told(photo, tmp_path, tiny_generator):
    model = save_generator(tiny_generator, tmp_path / "g.safetensors")
    base = ["project", str(photo), "--model", str(model), "--steps", "0", "--perceptual-weight", "0"]
    base += ["--device", "cpu"]
    res = CliRunner().invoke(cli, [*base, "--align", "--outdir", str(tmp_path / "one")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "one").iterdir() if p.is_dir()) == ["crew_01"]
    config = json.loads((tmp_path / "one" / "crew_01" / "config.json").read_text())
    assert config["preprocess"] == "ffhq-align, largest face"
    res = CliRunner().invoke(cli, [*base, "--align", "--face", "all", "--outdir", str(tmp_path / "two")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.is_dir()) == ["crew_01", "crew_02"]
    res = CliRunner().invoke(cli, [*base, "--face", "all", "--outdir", str(tmp_path / "none")])
    assert res.exit_code == 2 and "--face needs --align" in res.output
