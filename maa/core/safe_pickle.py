"""Reading foreign torch pickles (Lightning checkpoints, research releases) without running their code.

    obj = load_pickle_checkpoint("maa1_full.ckpt")     # a dict; tensors memory-mapped when possible

Always `torch.load(weights_only=True)`, never `weights_only=False`. Besides tensors and plain
containers such files hold a few other globals, allowed here by their **exact** names:

  * numpy scalars and dtypes (Lightning learning rates computed with numpy): the real
    reconstruction functions, under both their numpy-1.x (`numpy.core...`) and numpy-2
    (`numpy._core...`) names, plus the dtype classes they need;
  * OmegaConf containers and nodes (hyper-parameters saved by Lightning): mapped to inert
    stand-ins that only store what they are given, so omegaconf need not be installed and none of
    its code runs;
  * a few builtin types and `collections.defaultdict`, `typing.Any` (the containers' metadata).

Anything else is refused before unpickling, with one line naming the global. A deny list would not
do: `builtins.exec` sits beside the benign `builtins.dict`, and `os.system` pickles as
`posix.system`.
"""

from __future__ import annotations

import collections
import pickle
import re
import typing
import zipfile
from pathlib import Path

import numpy as np
import torch

from maa.core.errors import MaaError


class Inert:
    """A stand-in for a foreign class: keeps its constructor arguments and pickled state, runs nothing."""

    pickled_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


INERT_NAMES = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.ValueNode",
)


def _inert(name: str) -> type:
    return type(name.rsplit(".", 1)[1], (Inert,), {"pickled_name": name})


def _numpy_names() -> list[tuple[object, str]]:
    """(object, pickled name) for numpy's scalar/array reconstruction under numpy 1 and numpy 2 names."""
    try:  # numpy 2 (numpy 1.26 has a numpy._core without multiarray)
        from numpy._core import multiarray  # noqa: PLC0415  numpy >= 2 renamed numpy.core: which one exists is known by trying
    except ImportError:
        from numpy.core import multiarray  # noqa: PLC0415  numpy < 2's name (see above)
    pairs: list[tuple[object, str]] = []
    for prefix in ("numpy.core", "numpy._core"):
        pairs += [(multiarray.scalar, f"{prefix}.multiarray.scalar"),
                  (multiarray._reconstruct, f"{prefix}.multiarray._reconstruct")]
    pairs += [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    # a pickled dtype names its class too: numpy.dtypes.Float64DType (numpy >= 1.25)
    for code in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        cls = type(np.dtype(code))
        pairs.append((cls, f"numpy.dtypes.{cls.__name__}"))
    return pairs


def allowed_globals() -> dict[str, object]:
    """Pickled name -> the object the unpickler may use for it (the exact allow-list)."""
    table = {name: obj for obj, name in _numpy_names()}
    table.update({name: _inert(name) for name in INERT_NAMES})
    table.update({
        "collections.defaultdict": collections.defaultdict,
        "typing.Any": typing.Any,
        **{f"builtins.{t.__name__}": t for t in (int, float, str, bool, dict, list, tuple, set, frozenset, bytes, type(None))},
    })
    return table


_REFUSED = re.compile(r"GLOBAL ([\w.]+)")


def _refuse(path: Path, names: list[str]) -> None:
    raise MaaError(f"{path}: refused, it would unpickle {', '.join(sorted(names))}, which may run code "
                   "(only tensors, numpy scalars and OmegaConf containers are read); nothing was executed")


def load_pickle_checkpoint(path: str | Path, mmap: bool = True):
    """The object in a torch pickle file, read with weights_only=True and the allow-list above.

    Zip files (torch >= 1.6) are scanned first, so a forbidden global is named before anything is
    unpickled; `mmap` keeps tensors on disk until used. Legacy files rely on torch's own refusal.
    Every failure is a MaaError of one line.
    """
    path = Path(path)
    if path.is_dir():
        raise MaaError(f"{path}: is a folder; pass the checkpoint file inside it (e.g. maa1_full.ckpt)")
    if not path.exists():
        raise MaaError(f"{path}: no such file")
    allowed = allowed_globals()
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as e:
            raise MaaError(f"{path}: not a complete torch checkpoint ({_first_line(e)}); is the file truncated?") from None
        bad = [n for n in found if n not in allowed]
        if bad:
            _refuse(path, bad)
    safe = [(obj, name) for name, obj in allowed.items()]
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        m = _REFUSED.search(str(e))
        if m:
            _refuse(path, [m.group(1)])
        raise MaaError(f"{path}: refused by the safe reader ({_first_line(e)}); nothing was executed") from None
    except Exception as e:
        raise MaaError(f"{path}: not a readable torch checkpoint ({_first_line(e)}); is the file complete?") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]
