"""Checkpoints: ``save(path, opt)`` / ``load(path, opt)``: parameters, state, steps, host scalars,
hyperparameters and schedule, keyed by parameter name. No pickle, atomic writes, verified reads.

Format ``adamkit-checkpoint`` version 1: a ``.npz`` (uncompressed zip) holding

- ``header.json``: ``{"format", "version", "layout", "params", "state_dict", "checksum"}`` where ``layout`` is
  the optimizer type, its schedule type, and per param group the ``[name, shape, dtype]`` of each parameter;
  ``params`` maps each name to its array entry; ``state_dict`` is ``opt.state_dict()`` with every array replaced
  by ``{"__array__": key}`` (NumPy scalars by ``{"__scalar__": key}``, tuples by ``{"__tuple__": [...]}``);
  floats are written by ``repr``, so they read back exactly; ``checksum`` is the sha256 of the header without
  it (canonical JSON) followed by each array's key, dtype, shape and bytes;
- ``a0.npy, a1.npy, ...``: the arrays, read back with ``allow_pickle=False`` (bfloat16 parameters as their uint16
  words, named ``"bfloat16"`` in the layout);
- the zip comment, the last 64 bytes of the file: ``MAGIC | length (8 bytes, little endian) | sha256 of the
  file before the comment | MAGIC2``. It tells a truncated file (no footer) from a corrupted one (footer present,
  digest differs) before any byte of the zip is parsed.

``save`` writes a temp file in the target's directory, flushes and fsyncs it, renames it over ``path`` and
fsyncs the directory: a crash leaves the previous checkpoint or the new one, never a torn file (only a stray
``.<name>.*.tmp``). ``load`` verifies everything first (integrity, format and version, checksum, layout against
the optimizer) and changes nothing unless all checks pass; then ``opt.load_state_dict`` restores state, steps,
hyperparameters and schedule, and the parameters are copied in place into ``opt.params[name]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .optimizer import Optimizer

FORMAT, VERSION = "adamkit-checkpoint", 1
_MAGIC, _MAGIC2 = b"\x89ADAMKIT-CKPT\r\n\x1a", b"\x00CKPT\x1a\n\x89"
_FOOTER = struct.Struct(f"<{len(_MAGIC)}sQ32s{len(_MAGIC2)}s")
assert _FOOTER.size == 64
_HEADER = "header.json"
_TAGS = ("__array__", "__scalar__", "__tuple__")


class CheckpointError(ValueError):
    """Base of every checkpoint refusal; the optimizer is left unchanged."""


class CheckpointTruncatedError(CheckpointError):
    """The file ends early (an interrupted copy or write): its integrity footer is missing."""


class CheckpointCorruptError(CheckpointError):
    """The bytes differ from what was written (bit flips, edits): a digest or checksum does not match."""


class CheckpointFormatError(CheckpointError):
    """Not an adamkit checkpoint (e.g. a pickle, which is never loaded), or an unsupported format version."""


class CheckpointLayoutError(CheckpointError):
    """The checkpoint is intact but belongs to another optimizer type, parameter set, shape or dtype."""


# ----------------------------------------------------------------------------------------------- save
def save(path: str | os.PathLike[str], optimizer: Optimizer) -> None:
    """Write ``optimizer``'s parameters, state, steps, hyperparameters and schedule to ``path`` atomically
    (an ``adamkit.torch`` optimizer too: its core)."""
    path = Path(path)
    optimizer = _core_of(optimizer)
    arrays: list[tuple[str, np.ndarray]] = []
    params = {name: _add_array(arrays, _words(np.asarray(value))) for name, value in optimizer.params.items()}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "layout": _layout(optimizer),
        "params": params,
        "state_dict": _encode(optimizer.state_dict(), arrays, "state_dict"),
    }
    header["checksum"] = _checksum(header, arrays)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            os.fchmod(f.fileno(), mode)
            _write_zip(f, header, arrays)
            _write_footer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_zip(f: io.BufferedRandom, header: dict[str, Any], arrays: list[tuple[str, np.ndarray]]) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr(_HEADER, json.dumps(header, allow_nan=True))
        for key, array in arrays:
            with z.open(f"{key}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, _c_order(array), allow_pickle=False)
        z.comment = bytes(_FOOTER.size)  # placeholder: the footer is written once the bytes before it are known


def _write_footer(f: io.BufferedRandom) -> None:
    """Replace the placeholder comment with ``MAGIC | length | sha256 of everything before | MAGIC2``."""
    size = f.seek(0, os.SEEK_END) - _FOOTER.size
    f.seek(0)
    digest, left = hashlib.sha256(), size
    while left:
        chunk = f.read(min(left, 1 << 24))
        digest.update(chunk)
        left -= len(chunk)
    f.seek(size)
    f.write(_FOOTER.pack(_MAGIC, size, digest.digest(), _MAGIC2))


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else what ``open`` would give a new file (0o666 less the umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (directories cannot be opened on some platforms: then nothing to do)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- load
def load(path: str | os.PathLike[str], optimizer: Optimizer) -> None:
    """Restore ``optimizer`` from a checkpoint written by ``save``; verified first, so a refusal changes nothing.

    Raises ``CheckpointTruncatedError``, ``CheckpointCorruptError``, ``CheckpointFormatError`` or
    ``CheckpointLayoutError`` (all ``ValueError``); errors from ``load_state_dict`` itself propagate.
    """
    door, optimizer = optimizer, _core_of(optimizer)
    data = Path(path).read_bytes()
    _verify_footer(data, path)
    header, arrays = _read_zip(data, path)
    if header.get("checksum") != _checksum(header, list(arrays.items())):
        raise CheckpointCorruptError(f"{path}: content checksum mismatch")
    try:
        _check_layout(header, arrays, optimizer, path)
        state_dict = _decode(header["state_dict"], arrays)
        params = {name: arrays[key] for name, key in header["params"].items()}
    except (KeyError, TypeError, IndexError, AttributeError) as e:  # intact checksum, malformed header
        raise CheckpointFormatError(f"{path}: malformed checkpoint header: {type(e).__name__}: {e}") from e
    for name, array in optimizer.params.items():
        if not array.flags.writeable:
            raise ValueError(f"parameter {name!r} is read-only: cannot restore it from {path}")
    optimizer.load_state_dict(state_dict)  # validates everything before changing anything
    for name, array in params.items():
        _words(optimizer.params[name])[...] = array
    if door is not optimizer:
        door._checkpoint_loaded()


def _core_of(optimizer: Any) -> Optimizer:
    """The adamkit optimizer to save or load: ``optimizer`` itself, or the core behind an ``adamkit.torch`` one."""
    core = getattr(optimizer, "_checkpoint_core", None)
    return core() if core is not None else optimizer


def _verify_footer(data: bytes, path: Any) -> None:
    if len(data) >= _FOOTER.size:
        magic, size, digest, magic2 = _FOOTER.unpack(data[-_FOOTER.size :])
        if magic == _MAGIC or magic2 == _MAGIC2:  # one flipped bit cannot break both
            if magic != _MAGIC or magic2 != _MAGIC2 or size != len(data) - _FOOTER.size:
                raise CheckpointCorruptError(f"{path}: integrity footer damaged")
            if hashlib.sha256(data[:size]).digest() != digest:
                raise CheckpointCorruptError(f"{path}: sha256 mismatch: the file was altered after it was written")
            return
    if b"PK\x03\x04".startswith(data[:4]):  # begins like a zip file (or is a cut-off beginning of one)
        if _has_end_of_zip(data):
            raise CheckpointFormatError(f"{path}: a zip/npz file without an adamkit checkpoint footer")
        raise CheckpointTruncatedError(f"{path}: the file ends early ({len(data)} bytes); it was cut off")
    kind = "a pickle (never loaded)" if data[:1] == b"\x80" else "not a zip file"
    raise CheckpointFormatError(f"{path}: not an adamkit checkpoint: {kind}")


def _has_end_of_zip(data: bytes) -> bool:
    """Whether ``data`` ends with a zip end-of-central-directory record (and its comment)."""
    start = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    return start >= 0 and start + 22 + int.from_bytes(data[start + 20 : start + 22], "little") == len(data)


def _read_zip(data: bytes, path: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            header = json.loads(z.read(_HEADER))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise CheckpointFormatError(f"{path}: not an adamkit checkpoint (format {header.get('format')!r})")
            if header.get("version") != VERSION:
                raise CheckpointFormatError(
                    f"{path}: checkpoint format version {header.get('version')!r}; this adamkit reads {VERSION}"
                )
            arrays = {}
            for name in z.namelist():
                if name == _HEADER:
                    continue
                if not name.endswith(".npy"):
                    raise CheckpointFormatError(f"{path}: unexpected entry {name!r}")
                with z.open(name) as entry:
                    arrays[name[: -len(".npy")]] = np.lib.format.read_array(entry, allow_pickle=False)
    except CheckpointError:
        raise
    except ValueError as e:  # numpy refuses object arrays (pickled data) with allow_pickle=False
        raise CheckpointFormatError(f"{path}: {e}") from e
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
        raise CheckpointFormatError(f"{path}: not a readable adamkit checkpoint: {e}") from e
    return header, arrays


def _check_layout(header: dict[str, Any], arrays: dict[str, np.ndarray], optimizer: Optimizer, path: Any) -> None:
    saved, ours = header["layout"], _layout(optimizer)
    if saved["optimizer"] != ours["optimizer"]:
        raise CheckpointLayoutError(f"{path}: saved from {saved['optimizer']}, loading into {ours['optimizer']}")
    if saved["schedule"] != ours["schedule"]:
        raise CheckpointLayoutError(
            f"{path}: saved with schedule {saved['schedule']}, the optimizer has {ours['schedule']}"
            " (attach the same schedule type first: opt.schedule = ...)"
        )
    if len(saved["groups"]) != len(ours["groups"]):
        raise CheckpointLayoutError(
            f"{path}: {len(saved['groups'])} param groups saved, the optimizer has {len(ours['groups'])}"
        )
    for i, (a, b) in enumerate(zip(saved["groups"], ours["groups"])):
        if a != b:
            diff = next(((x, y) for x, y in zip(a, b) if x != y), (a, b))
            raise CheckpointLayoutError(f"{path}: param group {i}: saved {diff[0]} != optimizer's {diff[1]}")
    for name, shape, dtype in (entry for group in ours["groups"] for entry in group):
        array = arrays.get(header["params"].get(name, ""))
        if array is None or list(array.shape) != shape or array.dtype.str != _WORDS.get(dtype, dtype):
            raise CheckpointLayoutError(f"{path}: parameter {name!r} is missing or differs from its layout entry")


# ---------------------------------------------------------------------------------------- encoding
def _layout(optimizer: Optimizer) -> dict[str, Any]:
    cls, schedule = type(optimizer), optimizer.schedule
    groups = []
    for group in optimizer.param_groups:
        groups.append(
            [[n, list(optimizer.params[n].shape), _dtype_name(optimizer.params[n])] for n in group["param_names"]]
        )
    return {
        "optimizer": f"{cls.__module__}.{cls.__qualname__}",
        "schedule": None if schedule is None else type(schedule).__name__,
        "groups": groups,
    }


_WORDS = {"bfloat16": "<u2"}
"""Parameter dtypes NumPy's .npy format cannot name, stored as their bit patterns (layout: the dtype's name)."""


def _dtype_name(array: np.ndarray) -> str:
    return "bfloat16" if array.dtype.name == "bfloat16" else array.dtype.str


def _words(array: np.ndarray) -> np.ndarray:
    """A bfloat16 array (ml_dtypes) as its uint16 words; other arrays as they are."""
    return array.view(np.uint16) if array.dtype.name == "bfloat16" else array


def _add_array(arrays: list[tuple[str, np.ndarray]], array: np.ndarray) -> str:
    if array.dtype.hasobject:
        raise TypeError("checkpoints hold numeric arrays only (object arrays would need pickle)")
    key = f"a{len(arrays)}"
    arrays.append((key, array))
    return key


def _encode(obj: Any, arrays: list[tuple[str, np.ndarray]], where: str) -> Any:
    """``obj`` as JSON-able data; arrays and NumPy scalars go to ``arrays`` and are referenced by key."""
    if isinstance(obj, np.ndarray):
        return {"__array__": _add_array(arrays, obj)}
    if isinstance(obj, np.generic):
        return {"__scalar__": _add_array(arrays, np.asarray(obj))}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str) or k in _TAGS]
        if bad:
            raise TypeError(f"{where}: keys must be strings other than {_TAGS}; got {bad}")
        return {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, value = next(iter(obj.items()))
            if tag == "__tuple__":
                return tuple(_decode(v, arrays) for v in value)
            return arrays[value] if tag == "__array__" else arrays[value][()]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def _checksum(header: dict[str, Any], arrays: list[tuple[str, np.ndarray]]) -> str:
    """sha256 of the header (without its checksum, canonical JSON), then each array's key, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "checksum"}, sort_keys=True).encode())
    for key, array in sorted(arrays, key=lambda item: int(item[0][1:]) if item[0][1:].isdigit() else -1):
        h.update(f"\0{key}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(_c_order(array).tobytes())
    return h.hexdigest()


def _c_order(array: np.ndarray) -> np.ndarray:
    """``array`` in C order, same shape (``np.ascontiguousarray`` would make a 0-d array 1-d)."""
    return array if array.flags.c_contiguous else array.copy(order="C")
