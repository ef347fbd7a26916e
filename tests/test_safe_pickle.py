"""The restricted unpickler refuses every global it was not given, before anything runs."""

from __future__ import annotations

import collections
import os
import pickle

import pytest

from wplus.errors import CheckpointError
from wplus.formats.safe_pickle import safe_load


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_allowed_globals_load():
    data = pickle.dumps(collections.OrderedDict(a=1))
    assert safe_load(data, {("collections", "OrderedDict"): collections.OrderedDict}) == {"a": 1}


def test_refuses_unknown_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pkl"
    f.write_bytes(pickle.dumps({"ok": [1, 2, _Payload(marker)]}))
    with pytest.raises(CheckpointError, match=r"evil\.pkl.*(posix|os|nt)\.system"):
        safe_load(f, {})
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x80\x04\x95", b"not a pickle at all"])
def test_broken_files_name_the_file(tmp_path, content):
    f = tmp_path / "broken.pkl"
    f.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.pkl"):
        safe_load(f, {})
