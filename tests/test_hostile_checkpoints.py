"""A corpus of hostile checkpoint files: every one is refused (or loads inertly) and provably runs nothing.

Each payload, if it ran, would create ``marker``; every test asserts the marker does not exist afterwards.
"""

from __future__ import annotations

import builtins
import importlib
import io
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from wplus.errors import CheckpointError
from wplus.formats import _testing as W
from wplus.formats.latents import load_foreign_latents
from wplus.loading import load_generator
from wplus.models.stylegan2 import random_generator


class Reduce:
    """An object that pickles as ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


@pytest.fixture(scope="module")
def G():
    torch.set_num_threads(1)
    return random_generator(tiny_config(8), seed=0, w_avg_samples=50)


def _payloads(marker: Path) -> dict[str, object]:
    code = touch_code(marker)
    return {
        "os-system": Reduce(os.system, f"touch {marker}"),
        "builtins-eval": Reduce(builtins.eval, code),
        "builtins-exec": Reduce(builtins.exec, code),
        "subprocess-call": Reduce(subprocess.call, ["touch", str(marker)]),
        "subprocess-popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "importlib-import": Reduce(importlib.import_module, "this"),
        "builtins-import": Reduce(builtins.__import__, "this"),
        "builtins-open": Reduce(builtins.open, str(marker), "w"),
        "builtins-getattr": Reduce(builtins.getattr, marker, "touch"),
        "pathlib-touch": Reduce(Path.touch, marker),
    }


PAYLOAD_NAMES = list(_payloads(Path("x")))


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_top_level_payloads_are_refused(tmp_path, kind, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps(_payloads(marker)[kind], protocol=4))
    with pytest.raises(CheckpointError, match=r"evil.*(refus|allow-list)"):
        load_generator(path)
    assert not marker.exists()


def test_torch_zip_with_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"g_ema": {"x": Reduce(os.system, f"touch {marker}")}}, tmp_path / "zip.pt")
    with pytest.raises(CheckpointError, match=r"zip\.pt.*refusing"):
        load_generator(tmp_path / "zip.pt")
    assert not marker.exists()


def test_legacy_torch_save_with_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save(
        {"g_ema": Reduce(os.system, f"touch {marker}")}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False
    )
    with pytest.raises(CheckpointError, match=r"legacy\.pt"):
        load_generator(tmp_path / "legacy.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"cos\nsystem\n(S'touch {m}'\ntR.",  # protocol 0 GLOBAL + REDUCE
        b"cposix\nsystem\n(S'touch {m}'\ntR.",
        b"(cos\nsystem\nS'touch {m}'\no.",  # OBJ opcode
        b"(S'touch {m}'\nios\nsystem\n.",  # INST opcode
        b"cbuiltins\neval\n(S'{code}'\ntR.",
        b"\x80\x02\x82\x01.",  # EXT1: extension-registry code
        b"\x80\x04P0\n.",  # persistent id in a plain pickle
        b"\x80\x05\x97.",  # protocol 5 out-of-band buffer
    ],
    ids=["p0-os-system", "p0-posix-system", "obj-opcode", "inst-opcode", "p0-eval", "ext1", "persid", "next-buffer"],
)
def test_protocol_tricks_are_refused(tmp_path, raw):
    marker = tmp_path / "pwned"
    path = tmp_path / "trick.pkl"
    path.write_bytes(raw.replace(b"{m}", str(marker).encode()).replace(b"{code}", touch_code(marker).encode()))
    with pytest.raises(CheckpointError, match=r"trick\.pkl"):
        load_generator(path)
    assert not marker.exists()


def test_payload_nested_in_a_valid_nvidia_pickle(G, tmp_path):
    marker = tmp_path / "pwned"
    rec = W._nvidia_record(G, "", 0)
    rec.meta["state"]["_modules"]["synthesis"].meta["state"]["evil"] = Reduce(os.system, f"touch {marker}")
    W._dump({"G_ema": rec, "G": rec, "D": None}, tmp_path / "nested.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"nested\.pkl.*(posix|os)\.system"):
        load_generator(tmp_path / "nested.pkl")
    assert not marker.exists()


def test_payload_in_training_set_kwargs(G, tmp_path):
    marker = tmp_path / "pwned"
    rec = W._nvidia_record(G, "", 0)
    blob = {"G_ema": rec, "training_set_kwargs": {"x": Reduce(builtins.exec, touch_code(marker))}}
    W._dump(blob, tmp_path / "kw.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"kw\.pkl.*builtins\.exec"):
        load_generator(tmp_path / "kw.pkl")
    assert not marker.exists()


def test_payload_inside_a_tensor_storage_blob(G, tmp_path):
    """The nested legacy torch.save blob of a storage is itself loaded with weights_only=True."""
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save(Reduce(os.system, f"touch {marker}"), buf, _use_new_zipfile_serialization=False)
    rec = W._nvidia_record(G, "", 0)
    rec.meta["state"]["_buffers"]["x"] = Reduce(torch.storage._load_from_bytes, buf.getvalue())
    W._dump({"G_ema": rec}, tmp_path / "blob.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"blob\.pkl"):
        load_generator(tmp_path / "blob.pkl")
    assert not marker.exists()


def test_embedded_module_source_is_never_executed(G, tmp_path):
    marker = tmp_path / "pwned"
    rec = W._nvidia_record(G, "", 0)
    rec.meta["module_src"] = f"import os\nos.system('touch {marker}')\n"
    rec.meta["state"]["_init_kwargs"] = W._EasyDict(z_dim=G.z_dim, c_dim=0, img_resolution=G.img_resolution)
    W._dump({"G_ema": rec}, tmp_path / "src.pkl", protocol=4, numpy1=False)
    assert load_generator(tmp_path / "src.pkl").num_ws == G.num_ws  # loads, and ...
    assert not marker.exists()  # ... the source text stayed text


def test_tf_build_module_src_is_never_executed(G, tmp_path):
    marker = tmp_path / "pwned"
    path = W.write_tf_pickle(G, tmp_path / "tf.pkl")
    data = path.read_bytes()
    old = b"import os\nos.system('echo this source must never run')\n"
    new = f"import os\nos.system('touch {marker}')#".encode().ljust(len(old), b"#")[: len(old)]
    assert len(new) == len(old) and old in data
    path.write_bytes(data.replace(old, new))
    assert load_generator(path).num_ws == G.num_ws
    assert not marker.exists()


def test_payload_in_tf_variables(G, tmp_path):
    marker = tmp_path / "pwned"
    gs = W._Network({"version": 4, "variables": [("dlatent_avg", Reduce(os.system, f"touch {marker}"))]})
    W._dump((gs, gs, gs), tmp_path / "tfvar.pkl", protocol=4, numpy1=False)
    with pytest.raises(CheckpointError, match=r"tfvar\.pkl.*system"):
        load_generator(tmp_path / "tfvar.pkl")
    assert not marker.exists()


def test_unknown_persistence_global_is_refused(tmp_path):
    raw = b"\x80\x04\x8c\x17torch_utils.persistence\x8c\x0bimport_hook\x93."
    (tmp_path / "hook.pkl").write_bytes(raw)
    with pytest.raises(CheckpointError, match=r"hook\.pkl.*torch_utils\.persistence\.import_hook"):
        load_generator(tmp_path / "hook.pkl")


def test_numpy_reconstruct_of_a_subclass_is_refused(tmp_path):
    arr = np.ma.masked_array([1.0, 2.0])
    (tmp_path / "ma.pkl").write_bytes(pickle.dumps((None, None, arr), protocol=2).replace(b"_core", b"core"))
    with pytest.raises(CheckpointError, match=r"ma\.pkl"):
        load_generator(tmp_path / "ma.pkl")


def test_object_array_latent_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.empty(1, dtype=object)
    arr[0] = Reduce(os.system, f"touch {marker}")
    np.save(tmp_path / "latents.npy", arr, allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"latents\.npy.*pickle"):
        load_foreign_latents(tmp_path / "latents.npy", num_ws=18)
    torch.save({"a": Reduce(os.system, f"touch {marker}")}, tmp_path / "latents.pt")
    with pytest.raises(CheckpointError, match=r"latents\.pt"):
        load_foreign_latents(tmp_path / "latents.pt", num_ws=18)
    assert not marker.exists()
