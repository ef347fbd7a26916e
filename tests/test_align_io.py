"""Input robustness, transform files and paste-back geometry: no dlib needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wplus.align import AlignTransform, align_face, face_mask, ffhq_quad, load_transform, paste_back
from wplus.cli.main import cli
from wplus.errors import ConfigError, ImageError
from wplus.io.checkpoint import save_generator
from wplus.io.images import load_image


def _photo(w: int = 96, h: int = 64) -> Image.Image:
    yy, xx = np.mgrid[:h, :w]
    arr = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def test_odd_modes_become_rgb(tmp_path):
    rgb = _photo()
    gray = rgb.convert("L")
    cases = {}
    gray.save(tmp_path / "l.png")
    cases["l.png"] = np.repeat(np.asarray(gray)[:, :, None], 3, axis=2)
    la = gray.convert("LA")
    la.putalpha(Image.fromarray(np.where(np.arange(96)[None, :] < 48, 0, 255).repeat(64, 0).astype(np.uint8)))
    la.save(tmp_path / "la.png")
    expect_la = np.repeat(np.asarray(gray)[:, :, None], 3, axis=2).copy()
    expect_la[:, :48] = 255  # transparent half composited on white
    cases["la.png"] = expect_la
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)
    rgba.save(tmp_path / "rgba.png")
    cases["rgba.png"] = np.full((64, 96, 3), 255, np.uint8)
    pal = rgb.quantize(16)
    pal.save(tmp_path / "p.png")
    cases["p.png"] = np.asarray(pal.convert("RGB"))
    rgb.convert("CMYK").save(tmp_path / "cmyk.tif")
    cases["cmyk.tif"] = np.asarray(rgb)
    i16 = np.asarray(gray, dtype=np.uint16) * 257
    Image.fromarray(i16).save(tmp_path / "i16.png")
    assert Image.open(tmp_path / "i16.png").mode == "I;16"
    cases["i16.png"] = np.repeat(np.asarray(gray)[:, :, None], 3, axis=2)
    for name, expected in cases.items():
        img = load_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (96, 64), name
        np.testing.assert_allclose(np.asarray(img, dtype=float), expected, atol=1, err_msg=name)


def test_exif_orientation_applied(tmp_path):
    upright = _photo(96, 64)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 64 x 96 on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    stored.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "rot.jpg")
    assert img.size == (96, 64)
    assert np.abs(np.asarray(img, dtype=float) - np.asarray(upright, dtype=float)).mean() < 4


def test_truncated_and_missing_files_name_the_file(tmp_path):
    _photo().save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name in ("cut.png", "missing.png"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)


def _synthetic_landmarks(eye_l=(40.0, 50.0), eye_r=(60.0, 50.0), mouth_y=75.0) -> np.ndarray:
    lm = np.zeros((68, 2))
    lm[36:42] = eye_l
    lm[42:48] = eye_r
    lm[48] = (eye_l[0] + 2, mouth_y)
    lm[54] = (eye_r[0] - 2, mouth_y)
    return lm


def test_ffhq_quad_geometry():
    # Upright face: eyes 20 apart, mouth 25 below -> x along +x with |x| = max(40, 45) = 45.
    quad, qsize = ffhq_quad(_synthetic_landmarks())
    c = np.array([50.0, 50.0 + 0.1 * 25.0])
    np.testing.assert_allclose(quad, c + np.array([[-45, -45], [-45, 45], [45, 45], [45, -45]]))
    assert qsize == pytest.approx(90.0)
    with pytest.raises(ConfigError):
        ffhq_quad(np.zeros((5, 2)))


def test_align_face_and_paste_back_roundtrip_without_dlib(tmp_path):
    photo = _photo(160, 140)
    face = align_face(photo, _synthetic_landmarks(), output_size=64, transform_size=256)
    assert face.image.size == (64, 64)
    np.testing.assert_allclose(face.quad[0], [50 - 45 + 0.5, 52.5 - 45 + 0.5])
    face.transform.save(tmp_path / "t.json")
    t = load_transform(tmp_path / "t.json")
    np.testing.assert_allclose(t.quad, face.quad)
    assert t.source_size == (160, 140) and t.output_size == 64
    pasted = paste_back(photo, face.image, t)
    a, b = np.asarray(photo, dtype=float), np.asarray(pasted, dtype=float)
    assert np.array_equal(a[100:], b[100:]) and np.array_equal(a[:, 100:], b[:, 100:])  # outside the quad
    assert np.abs(a[25:80, 25:75] - b[25:80, 25:75]).mean() < 3  # the face's middle comes back
    # An "edit" (a black face at another resolution) lands in the quad only.
    dark = paste_back(photo, Image.new("RGB", (32, 32)), t.to_dict())
    d = np.asarray(dark, dtype=float)
    assert d[30:75, 30:70].max() < 5 and np.array_equal(d[100:], a[100:])


def test_paste_back_rejects_wrong_photo_and_bad_json(tmp_path):
    t = AlignTransform(quad=np.array([[0, 0], [0, 10], [10, 10], [10, 0]], float), source_size=(20, 20), output_size=8)
    with pytest.raises(ImageError, match="expected 20x20"):
        paste_back(_photo(30, 30), Image.new("RGB", (8, 8)), t)
    (tmp_path / "bad.json").write_text(json.dumps({"quad": []}))
    with pytest.raises(ConfigError, match="bad.json"):
        load_transform(tmp_path / "bad.json")


def test_face_mask_feathers_to_zero():
    m = np.asarray(face_mask(40, 0.1))
    assert m[20, 20] == 255 and m[0, 20] == 0 and m[20, 0] == 0 and 0 < m[20, 2] < 255


def test_paste_cli(tmp_path):
    photo = _photo(160, 140)
    photo.save(tmp_path / "photo.png")
    face = align_face(photo, _synthetic_landmarks(), output_size=64, transform_size=256)
    face.image.save(tmp_path / "face.png")
    face.transform.save(tmp_path / "face.json")
    photo_path, face_path = str(tmp_path / "photo.png"), str(tmp_path / "face.png")
    args = ["paste", photo_path, face_path, "--transform", str(tmp_path / "face.json")]
    res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out.png")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "out.png").size == (160, 140)
    res = CliRunner().invoke(cli, [*args[:3], "--transform", str(tmp_path / "nope.json"), "--out", "x.png"])
    assert res.exit_code == 2 and "nope.json" in res.output and "'--transform'" in res.output  # checked first


def test_project_crop_none_and_paste_back_needs_align(tmp_path, tiny_generator):
    save_generator(tiny_generator, tmp_path / "g.safetensors")
    _photo(48, 24).save(tmp_path / "wide.png")
    base = ["project", str(tmp_path / "wide.png"), "--model", str(tmp_path / "g.safetensors"), "--steps", "1"]
    base += ["--perceptual-weight", "0", "--device", "cpu", "--outdir", str(tmp_path / "out")]
    res = CliRunner().invoke(cli, [*base, "--crop", "none"])
    assert res.exit_code == 0, res.output
    target = np.asarray(Image.open(tmp_path / "out" / "wide" / "target.png"), dtype=float)
    assert target.shape == (16, 16, 3) and target[:, 0, 0].mean() < 40 and target[:, -1, 0].mean() > 215
    res = CliRunner().invoke(cli, [*base, "--paste-back"])
    assert res.exit_code != 0 and "--align" in res.output


def test_no_rotate_and_no_padding_options():
    tilted = _synthetic_landmarks(eye_l=(40.0, 45.0), eye_r=(60.0, 55.0))
    quad, _ = ffhq_quad(tilted, rotate=False)
    assert quad[0][0] == quad[1][0] and quad[0][1] == quad[3][1]
    rotated, _ = ffhq_quad(tilted)
    assert rotated[0][0] != rotated[1][0]
    photo = Image.new("RGB", (100, 100), (200, 150, 100))  # the quad (5..95, 7.5..97.5) pokes out at the bottom
    lm = _synthetic_landmarks(eye_l=(40.0, 80.0), eye_r=(60.0, 80.0), mouth_y=105.0)
    black = align_face(photo, lm, output_size=32, transform_size=64, enable_padding=False).image
    padded = align_face(photo, lm, output_size=32, transform_size=64).image
    assert np.asarray(black)[-1].max() == 0 and np.asarray(padded)[-1].min() > 90
