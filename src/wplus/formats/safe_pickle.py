"""A restricted unpickler: the shared machinery under every reader of foreign pickles.

NVIDIA and TF checkpoints are pickles whose reduce callables would ``exec`` source code stored in the file. We never
resolve such callables to the real ones: each reader passes an explicit allow-list that maps the few (module, name)
globals it needs to safe stand-ins (plain functions that just return the stored state, numpy/torch rebuild helpers).
Any other global is refused with a :class:`CheckpointError` naming the global and the file, before anything runs.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from wplus.errors import CheckpointError

__all__ = ["RestrictedUnpickler", "safe_load", "AllowList"]

AllowList = Mapping[tuple[str, str], Any]


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only returns objects from ``allowed``.

    Persistent ids (``torch.save``'s zip format) are refused unless ``persistent_load`` is given.
    """

    def __init__(
        self,
        file: BinaryIO,
        allowed: AllowList,
        *,
        path: str | Path | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
        encoding: str = "ASCII",
    ):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._path = path
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CheckpointError(
                self._path,
                f"refusing to load: the file asks for the global {module}.{name}, which is not on wplus's allow-list "
                "for this format (loading it could run code); if this is a genuine checkpoint, please report it",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointError(self._path, "refusing to load: unexpected persistent id in the pickle stream")
        return self._persistent(pid)


def safe_load(
    source: str | Path | bytes | BinaryIO,
    allowed: AllowList,
    *,
    path: str | Path | None = None,
    encoding: str = "ASCII",
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``source`` (a path, bytes or binary file) with only the ``allowed`` globals.

    Every failure (truncated, empty, not a pickle, refused global) becomes a CheckpointError naming the file.
    """
    if isinstance(source, (str, Path)):
        path = path or source
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise CheckpointError(path, f"cannot read file ({e.strerror or e})") from None
        source = data
    if isinstance(source, bytes):
        if not source:
            raise CheckpointError(path, "the file is empty; expected a checkpoint (re-download it)")
        source = io.BytesIO(source)
    try:
        return RestrictedUnpickler(
            source, allowed, path=path, persistent_load=persistent_load, encoding=encoding
        ).load()
    except CheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        UnicodeDecodeError,
        MemoryError,
        RecursionError,
    ) as e:
        raise CheckpointError(
            path,
            f"not a readable checkpoint pickle ({type(e).__name__}: {e}); the file may be truncated or of another kind",
        ) from None


def _checked_dtype(*args: Any) -> Any:
    """``numpy.dtype`` that refuses object dtypes: an object array would unpickle arbitrary Python objects."""
    import numpy as np

    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("refusing a numpy array of Python objects (dtype=object)")
    return dt


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's array-pickle entry point, restricted to plain ``ndarray`` (no subclass constructors)."""
    import numpy as np

    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {subtype!r}; only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, shape, _checked_dtype(dtype))


def _safe_scalar(dtype: Any, *args: Any) -> Any:
    """A pickled numpy scalar (e.g. TF's ``lod``), only from raw bytes of a non-object dtype."""
    import numpy as np

    dtype = _checked_dtype(dtype)
    if args and not isinstance(args[0], bytes):
        raise pickle.UnpicklingError("refusing a numpy scalar without a raw byte payload")
    return np.frombuffer(args[0], dtype=dtype, count=1)[0] if args else dtype.type(0)


def numpy_globals() -> dict[tuple[str, str], Any]:
    """The numpy globals that pickled arrays and scalars need, under both numpy 1.x and 2.x module names."""
    import numpy as np

    out: dict[tuple[str, str], Any] = {("numpy", "dtype"): _checked_dtype, ("numpy", "ndarray"): np.ndarray}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "scalar")] = _safe_scalar
        out[(mod, "_reconstruct")] = _safe_reconstruct
    return out
