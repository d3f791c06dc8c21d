"""A restricted unpickler for the offline dataset container (a list of dicts of numpy arrays, spec §1.5).

`pickle.load` calls whatever global a file names, so a crafted "dataset" runs any code on load. `safe_load`
resolves globals only from `ALLOWED`, an explicit table of the objects numpy's own pickles reference (numpy 1.x
spells its internals `numpy.core.*`, numpy 2 `numpy._core.*`; both map to the objects of the numpy installed
here). A name is looked up in the table, never imported: a refused global does not even import its module.
Dicts, lists, tuples, str, int, float, bool and None are pickle opcodes and need no global.

Which pickles reference which entry (checked with numpy 1.26 and 2.4, protocols 0-5):

- `numpy.dtype`: every array and numpy scalar (dtypes pickle as `numpy.dtype('f4', False, True)` + state).
- `numpy.ndarray` + `numpy[._]core.multiarray._reconstruct`: arrays with protocols 0-4, and with protocol 5 the
  arrays that are neither C- nor F-contiguous (slices with steps) and object arrays.
- `numpy[._]core.numeric._frombuffer`: contiguous arrays with protocol 5 (`pickle.HIGHEST_PROTOCOL`, as
  `save_trajectories` writes).
- `numpy[._]core.multiarray.scalar`: numpy scalars (`np.float32(0.5)`, `np.bool_(True)`), any protocol.
- `_codecs.encode` (latin-1 only) and `builtins.bytes` (spelled `__builtin__.bytes`): protocols 0-2 write bytes
  objects (an array's raw data) as `_codecs.encode(<latin-1 str>, 'latin1')` and empty bytes as `bytes()`.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

WHAT_A_DATASET_HOLDS = "a dataset holds only dicts, lists, tuples, Python scalars and numpy arrays"


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside `ALLOWED`; the message is one line naming the source and the global."""

    def __init__(self, source: str, module: str, name: str):
        self.source, self.module, self.name = source, module, name
        qualified = f"{module}.{name}"
        if len(qualified) > 200:
            qualified = qualified[:200] + "..."
        super().__init__(f"{source}: refused to unpickle the global {qualified!r}: {WHAT_A_DATASET_HOLDS} "
                         "(the file is not a dataset, or it was crafted to run code)")


class _Latin1Encode:
    """`_codecs.encode` as protocols 0-2 use it (`encode(<str>, 'latin1')` -> bytes), and nothing else: no other
    codec is looked up (a codec lookup imports modules of the `encodings` package)."""

    __slots__ = ()  # no __dict__ and no __setstate__: a pickle's BUILD opcode cannot modify the shared instance

    def __call__(self, obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise pickle.UnpicklingError(f"_codecs.encode is allowed only as encode(<str>, 'latin1'), not with "
                                         f"({type(obj).__name__}, {str(encoding)[:40]!r})")
        return obj.encode("latin1")


class _FromBuffer:
    """numpy's `_frombuffer(buf, dtype, shape, order[, axis_order])` (protocol-5 arrays). numpy's is a Python
    function, whose attributes a pickle's BUILD opcode could overwrite for the whole process; this stand-in has
    none to overwrite."""

    __slots__ = ()

    def __call__(self, *args: Any) -> np.ndarray:
        return _numeric._frombuffer(*args)


_RECONSTRUCT = _multiarray._reconstruct  # builtin functions: immutable
_SCALAR = _multiarray.scalar
_FROMBUFFER = _FromBuffer()

# (module, name) as the pickle spells it -> the object. Nothing else resolves.
ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # written by numpy 2
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # written by numpy 1.x
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _Latin1Encode(),
    ("builtins", "bytes"): bytes,
    ("__builtin__", "bytes"): bytes,  # protocols 0-2 spell builtins the Python 2 way
}


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from `ALLOWED`; any other raises `ForbiddenGlobal`."""

    def __init__(self, file: IO[bytes], source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):  # TypeError: unhashable names cannot come from a pickle, but never import
            raise ForbiddenGlobal(self.source, str(module), str(name)) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"{self.source}: the pickle uses persistent ids, which a dataset never does")


def safe_load(fileobj: IO[bytes], source: str) -> Any:
    """Unpickles one object from `fileobj` (binary, e.g. `gzip.open(path, 'rb')`) with the `ALLOWED` globals only.

    Args:
        fileobj: the open file.
        source: what to call the file in error messages (its path).
    Raises:
        ForbiddenGlobal: the pickle names any other global (one line: source and the global).
        pickle.UnpicklingError, EOFError, ...: as `pickle.load` for malformed pickles.
    """
    return SafeUnpickler(fileobj, source).load()


def safe_loads(data: bytes, source: str) -> Any:
    """`safe_load` from bytes."""
    return safe_load(io.BytesIO(data), source)
