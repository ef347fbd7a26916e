"""The web UI in a real browser: Debian's chromium driven by Playwright (headless), against `wplus serve`'s page
started in this process on 127.0.0.1. Upload a face, embed it, move the smile slider, check that the image changed;
then mix it with another code through the two-handled layer range and check that the range decides the image;
then click two corners on the Style channels tab's image and check that they make the box.

Run with `make test-browser` (or `pytest -m browser`); plain `pytest` deselects it (pyproject addopts).
WPLUS_WEB_SCREENSHOT=docs/web-ui.png also saves the page (the README's screenshot), the Style mixing tab
(docs/web-ui-mix.png) and the Style channels tab after finding the channels of the clicked box and moving the first
(docs/web-ui-style.png, with the mouth transferred from the other code; the channel effects and the part catalogue
are read from the user's wplus cache when there, else measured: minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time

import pytest

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for candidate in (os.environ.get("WPLUS_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embed_then_smile_in_a_real_browser(tmp_path, monkeypatch):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary: apt-get install chromium (or set WPLUS_CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright

    from wplus.data.faces import HELD_OUT_SEED_BASE, draw_face, sample_attributes
    from wplus.io.latents import Latent, save_latent
    from wplus.loading import load_generator
    from wplus.seeds import ws_from_seed
    from wplus.web.app import build_app, launch_app

    shot = os.environ.get("WPLUS_WEB_SCREENSHOT")
    monkeypatch.setenv("WPLUS_OFFLINE", "1")  # no network: the shipped model, its discriminator features as loss
    if shot:  # the style-space statistics and channel effects of the user's cache: minutes saved, the loss unchanged
        from wplus.hub.download import cache_dir

        if (cache_dir() / "stylespace").is_dir():
            shutil.copytree(cache_dir() / "stylespace", tmp_path / "cache" / "stylespace")
    monkeypatch.setenv("WPLUS_CACHE", str(tmp_path / "cache"))  # the same loss on every machine (no cached VGG)
    face = tmp_path / "face.png"
    draw_face(sample_attributes(HELD_OUT_SEED_BASE + 3), size=256).save(face)
    style = tmp_path / "style.npz"
    save_latent(style, Latent(ws=ws_from_seed(load_generator("cartoon-faces-64"), 7)[1]), npy=False)
    app = build_app("cartoon-faces-64", device="cpu", workdir=tmp_path / "work")
    port = _free_port()
    launch_app(app, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("input[type=file]").first.set_input_files(str(face))
            steps = page.locator("#steps input[type=number]")
            steps.fill("30")
            steps.press("Enter")
            page.locator("#embed-button").click()
            page.locator("#embed-status", has_text="SSIM").wait_for(timeout=180_000)
            assert "PSNR" in page.locator("#embed-status").inner_text()
            if shot:
                page.screenshot(path=shot, full_page=True)
            page.get_by_role("tab", name="Edit").click()
            edited = page.locator("#edited img")
            edited.wait_for(timeout=60_000)  # the Edit tab renders the new embedding at once
            before = edited.get_attribute("src")
            smile = page.locator("#smile-slider input[type=number]")
            smile.fill("2")  # the top of the shipped smile's recommended range (-1..2)
            smile.press("Enter")
            deadline = time.time() + 60
            while edited.get_attribute("src") == before and time.time() < deadline:
                time.sleep(0.2)
            after = edited.get_attribute("src")
            assert after != before, "moving the smile slider did not re-render the image"
            old, new = page.request.get(before).body(), page.request.get(after).body()
            assert old != new
            # Style mixing: the embedding is the content already; the style is another face's code.
            page.get_by_role("tab", name="Style mixing").click()
            page.locator("#mix-style input[type=file]").set_input_files(str(style))
            page.locator("#mix-style", has_text=re.compile(r"style\s*\.npz")).wait_for(timeout=30_000)  # name, suffix
            mixes = []
            for lo, hi in (("0", "3"), ("6", "9")):
                page.locator("#layer-range .wplus-hi").fill(hi)  # fill() sends input and change events
                page.locator("#layer-range .wplus-lo").fill(lo)
                assert page.locator("#layer-range .wplus-range-text").inner_text() == f"{lo} to {hi}"
                mixed = page.locator("#mixed img")
                previous = mixed.get_attribute("src") if mixes else None
                page.locator("#mix-button").click()
                deadline = time.time() + 60
                while time.time() < deadline:
                    src = mixed.get_attribute("src") if mixed.count() else None
                    if src and src != previous:
                        break
                    time.sleep(0.2)
                assert src and src != previous, f"mixing layers {lo}-{hi} did not render"
                mixes.append(page.request.get(src).body())
            assert mixes[0] != mixes[1], "the layer range did not change the mix"
            if shot:
                page.screenshot(path=shot.replace(".png", "-mix.png"), full_page=True)
            # Style channels: the embedding is there already (shown at 256 px); two clicks make a box round the mouth.
            page.get_by_role("tab", name="Style channels").click()
            face = page.locator("#style-image img")
            face.wait_for(timeout=60_000)
            size = face.bounding_box()
            face.click(position={"x": size["width"] * 0.3, "y": size["height"] * 0.62})
            page.locator("#style-status", has_text="first corner").wait_for(timeout=30_000)
            face.click(position={"x": size["width"] * 0.7, "y": size["height"] * 0.85})
            page.locator("#style-status", has_text="press Find channels").wait_for(timeout=30_000)
            box = page.locator("#style-box").get_by_role("textbox").input_value()
            x0, y0, x1, y1 = (int(v) for v in re.fullmatch(r"(\d+),(\d+),(\d+),(\d+)", box).groups())
            assert 15 <= x0 < 23 and 36 <= y0 < 44 and 41 < x1 <= 49 and 50 < y1 <= 58, box  # 64 px: ±4 px
            if shot:
                page.locator("#style-find").click()
                page.locator("#style-status", has_text="Each slider moves").wait_for(timeout=900_000)
                time.sleep(1)  # the image re-renders for the new channels
                shown = face.get_attribute("src")
                first = page.locator("#style-slider-0 input[type=number]")
                first.fill("10")
                first.press("Enter")
                deadline = time.time() + 60
                while face.get_attribute("src") == shown and time.time() < deadline:
                    time.sleep(0.2)
                # and the mouth of the other code (the part catalogue is read from the cache too, when there)
                page.locator("#style-reference input[type=file]").set_input_files(str(style))
                page.locator("#style-reference", has_text=re.compile(r"style\s*\.npz")).wait_for(timeout=30_000)
                page.locator("#style-transfer").click()
                page.locator("#style-transfer-status", has_text="of the way").wait_for(timeout=600_000)
                page.screenshot(path=shot.replace(".png", "-style.png"), full_page=True)
            browser.close()
    finally:
        app.close()
