"""Image inputs that used to get through: decompression bombs, masks of another shape, folders without images, and
the one list of image suffixes every command shares."""

from __future__ import annotations

import io
import json
import time
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

import wplus.align
import wplus.io.images
from conftest import FakeDetector
from wplus.cli.main import cli
from wplus.datasets.inputs import expand_inputs
from wplus.errors import ConfigError, ImageError
from wplus.io.checkpoint import save_generator
from wplus.io.images import IMAGE_SUFFIXES, MAX_PIXELS, load_image
from wplus.io.masks import load_mask, split_alpha
from wplus.train.trainer import load_image_folder


def bomb_png(path, width: int, height: int) -> None:
    """A real 1x1 PNG whose IHDR is patched to declare width x height (CRC recomputed): a few dozen bytes."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def photo(w: int = 96, h: int = 64) -> Image.Image:
    yy, xx = np.mgrid[:h, :w]
    return Image.fromarray(np.stack([xx * 2, yy * 3, (xx + yy) % 256], -1).astype(np.uint8), "RGB")


@pytest.fixture
def decoded(monkeypatch):
    """Records every PNG decode, to prove that the size is refused from the header."""
    calls = []
    original = PngImagePlugin.PngImageFile.load

    def load(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    return calls


def test_bomb_png_is_refused_from_its_header(tmp_path, decoded):
    bomb_png(tmp_path / "bomb.png", 30000, 30000)
    assert (tmp_path / "bomb.png").stat().st_size < 100
    assert PngImagePlugin.PngImageFile(tmp_path / "bomb.png").size == (30000, 30000)  # a valid header, tiny payload
    start = time.perf_counter()
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "bomb.png")
    assert time.perf_counter() - start < 2
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "bomb.png"))
    assert "900,000,000 pixels" in msg and f"{MAX_PIXELS:,}" in msg and "--max-pixels" in msg
    assert decoded == []


def test_our_limit_counts_below_pillows(tmp_path, decoded):
    bomb_png(tmp_path / "big.png", 12000, 10000)  # 120 MP: Pillow would only warn, our 100 MP limit refuses
    with pytest.raises(ImageError, match=r"big\.png: 12000x10000 = 120,000,000 pixels, more than the limit"):
        load_image(tmp_path / "big.png")
    assert decoded == []
    photo(100, 50).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match=r"100x50 = 5,000 pixels, more than the limit of 4,999"):
        load_image(tmp_path / "small.png", max_pixels=4999)
    assert load_image(tmp_path / "small.png", max_pixels=5000).size == (100, 50)


def test_default_limit_is_settable_and_pillows_limit_is_lifted_only_when_asked(tmp_path, monkeypatch):
    photo(100, 50).save(tmp_path / "p.png")
    monkeypatch.setattr(wplus.io.images, "MAX_PIXELS", 4000)
    with pytest.raises(ImageError, match="limit of 4,000"):
        load_image(tmp_path / "p.png")
    monkeypatch.setattr(wplus.io.images, "MAX_PIXELS", 100_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses > 2000 pixels in Image.open
    with pytest.raises(ImageError, match=r"p\.png: 5,000 pixels, more than the limit of 1,500"):
        load_image(tmp_path / "p.png", max_pixels=1500)  # Pillow's refusal, reported as ours
    assert load_image(tmp_path / "p.png", max_pixels=5000).size == (100, 50)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    with pytest.raises(ConfigError, match="max_pixels"):
        load_image(tmp_path / "p.png", max_pixels=0)


def test_masks_and_alpha_targets_obey_the_limit(tmp_path):
    bomb_png(tmp_path / "bomb.png", 30000, 30000)
    for fn in (load_mask, split_alpha):
        with pytest.raises(ImageError, match="bomb.png: 900,000,000 pixels"):
            fn(tmp_path / "bomb.png", 16)


@pytest.fixture
def fake_detector(monkeypatch):
    monkeypatch.setattr(wplus.align, "LandmarkDetector", FakeDetector)


def _align(*args):
    return CliRunner().invoke(cli, ["align", *map(str, args), "--size", "16", "--transform-size", "32"])


def test_align_batch_with_a_bomb_goes_on(tmp_path, fake_detector):
    photo().save(tmp_path / "good.png")
    bomb_png(tmp_path / "bomb.png", 30000, 30000)
    res = _align(tmp_path / "bomb.png", tmp_path / "good.png", "--outdir", tmp_path / "out", "--json")
    assert res.exit_code == 1
    assert (tmp_path / "out" / "good_01.png").is_file()
    summary = json.loads(res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1])
    (failed,) = summary["failed"]
    assert failed["image"].endswith("bomb.png") and "900,000,000 pixels" in failed["error"]
    assert "Traceback" not in res.output
    assert "1 of 2 inputs aligned" in res.output.splitlines()[-1]


def test_align_max_pixels_option(tmp_path, fake_detector):
    photo(96, 64).save(tmp_path / "p.png")
    res = _align(tmp_path / "p.png", "--outdir", tmp_path / "a", "--max-pixels", "6000")
    assert res.exit_code == 1 and "96x64 = 6,144 pixels, more than the limit of 6,000" in res.output
    res = _align(tmp_path / "p.png", "--outdir", tmp_path / "b", "--max-pixels", "6144")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "p_01.png").is_file()


def test_align_folder_without_images_is_named(tmp_path, fake_detector):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    res = _align(tmp_path / "docs", "--outdir", tmp_path / "out")
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert f"{tmp_path / 'docs'}: no image files in this folder or below" in line and "IMAGES" in line
    photo().save(tmp_path / "single.png")  # as project does: a typo among good inputs stops the run before it starts
    res = _align(tmp_path / "single.png", tmp_path / "docs", "--outdir", tmp_path / "out")
    assert res.exit_code == 2 and not (tmp_path / "out").exists()


def test_align_searches_folders_recursively_and_keeps_their_layout(tmp_path, fake_detector):
    (tmp_path / "photos" / "trip" / "day2").mkdir(parents=True)
    (tmp_path / "photos" / "_drafts").mkdir()
    photo().save(tmp_path / "photos" / "a.png")
    photo().save(tmp_path / "photos" / "trip" / "b.jpg")
    photo().save(tmp_path / "photos" / "trip" / "day2" / "a.png")
    photo().save(tmp_path / "photos" / "_drafts" / "skip.png")
    for name in ("c.txt", ".hidden.png"):
        (tmp_path / "photos" / name).write_text("x")
    photo().save(tmp_path / "a.png")  # same stem as photos/a.png: a unique name, as project gives it
    res = _align(tmp_path / "a.png", tmp_path / "photos", "--outdir", tmp_path / "out")
    assert res.exit_code == 0, res.output
    found = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")}
    assert found == {"a_01.png", "a_2_01.png", "trip/b_01.png", "trip/day2/a_01.png"}
    assert (tmp_path / "out" / "trip" / "day2" / "a_01.json").is_file()
    assert f"{tmp_path / 'photos' / 'trip' / 'b.jpg'}: 1 face -> {tmp_path / 'out' / 'trip'}" in res.output
    # The same inputs through project's expansion name the same folders (one rule for both commands).
    assert [i.name for i in expand_inputs([tmp_path / "a.png", tmp_path / "photos"])] == [
        "a", "a_2", "trip/b", "trip/day2/a"
    ]  # fmt: skip


def test_project_batch_with_a_bomb_goes_on(tmp_path, tiny_generator):
    model = save_generator(tiny_generator, tmp_path / "tiny.safetensors")
    photo().save(tmp_path / "good.png")
    bomb_png(tmp_path / "bomb.png", 30000, 30000)
    args = ["project", tmp_path / "bomb.png", tmp_path / "good.png", "--model", model, "--steps", "0",
            "--perceptual-weight", "0", "--outdir", tmp_path / "out", "--device", "cpu"]  # fmt: skip
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output and "900,000,000 pixels" in res.output
    assert (tmp_path / "out" / "good" / "latent.npz").is_file()


def test_mask_of_another_aspect_ratio_is_refused(tmp_path):
    Image.new("L", (64, 64), 255).save(tmp_path / "square.png")
    with pytest.raises(ImageError) as e:
        load_mask(tmp_path / "square.png", 16, image_size=(96, 64), image_path=tmp_path / "photo.jpg")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "square.png")) and "\n" not in msg
    assert "64x64 (aspect 1.000)" in msg and "photo.jpg is 96x64 (aspect 1.500)" in msg and "resize it to 96x64" in msg
    Image.new("L", (960, 641), 255).save(tmp_path / "close.png")  # within 1 %: accepted
    assert load_mask(tmp_path / "close.png", 16, image_size=(96, 64)).shape == (1, 1, 16, 16)
    assert load_mask(tmp_path / "square.png", 16).shape == (1, 1, 16, 16)  # no image size: nothing to compare


def test_mask_follows_the_targets_crop(tmp_path):
    white = np.zeros((64, 128), np.uint8)
    white[:, :96] = 255  # the left three quarters
    Image.fromarray(white).save(tmp_path / "m.png")
    centre = load_mask(tmp_path / "m.png", 16)  # centre crop: columns 32-95, all white
    squash = load_mask(tmp_path / "m.png", 16, crop="none")  # the whole width: the right quarter stays black
    assert centre.min() > 0.9
    assert squash[0, 0, :, :10].min() > 0.9 and squash[0, 0, :, 13:].max() < 0.1
    rgba = Image.new("RGBA", (128, 64), (10, 20, 30, 0))
    rgba.paste((10, 20, 30, 255), (0, 0, 32, 64))
    rgba.save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="alpha is zero everywhere"):  # the centre crop drops the opaque quarter
        split_alpha(tmp_path / "a.png", 16)
    _, m_squash = split_alpha(tmp_path / "a.png", 16, crop="none")
    assert m_squash[0, 0, :, :3].mean() == 1 and m_squash[0, 0, :, 5:].max() == 0


def test_one_list_of_image_suffixes(tmp_path, tiny_generator):
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("a.ppm", "b.tif", "c.gif", "d.PNG"):
        photo(24, 24).save(folder / name)
    (folder / "e.txt").write_text("x")
    assert {i.path.suffix.lower() for i in expand_inputs([folder])} == {".ppm", ".tif", ".gif", ".png"}
    assert load_image_folder(folder, 16).shape == (4, 3, 16, 16)
    with pytest.raises(ConfigError, match="is an image"):
        wplus.load_code(folder / "a.ppm", tiny_generator)
    assert {".png", ".jpg", ".jpeg", ".webp", ".ppm"} <= IMAGE_SUFFIXES
