"""Two engines that run one elementwise rule over a flat buffer.

``numpy``: calls the rule on whole arrays and writes the results back (the readable reference).
``fused``: inlines the same rule into one numba loop, parallel over elements for large buffers. The loop is
generated from the rule's signature and written to a cache directory, so numba's on-disk cache can keep the
compiled kernel across processes.

The kernel cache heals and never goes stale:

- the file name carries a hash of numba's version, adamkit's source, and the source files of the rule's own
  module and of every module whose functions it calls (a rule edited in a user's module gets a new kernel);
- an unwritable cache directory falls back to a per-user temp directory, then to compiling without a disk
  cache; a kernel file whose text differs from what it should be is rewritten; numba index/data files
  (``.nbi``/``.nbc``) that fail to load are deleted and the kernel recompiled. An error that remains names the
  cache directory (``KernelCacheError``);
- ``prepare`` loads or compiles a kernel ahead of a step, so a cache problem surfaces before anything is
  written.

Process life (numba's threading layers, https://numba.readthedocs.io/en/stable/user/threading-layer.html):
numba picks ``tbb`` if installed (thread- and fork-safe), else ``omp`` (thread-safe; GNU OpenMP is *not*
fork-safe: a forked child that launches a parallel region aborts), else ``workqueue`` (fork-safe, *not*
thread-safe: concurrent launches abort the process). adamkit keeps numba's choice (the layer is process-wide and
belongs to the user) and makes either safe for its own kernels: in a process forked after an ``omp`` parallel
launch, the parallel kernel is replaced by the serial one (same loop, same results, one thread); unless the
layer is known thread-safe (``tbb``, ``omp``), parallel kernel calls are serialised by a lock, so Python
threads may step separate optimizers concurrently. ``pip install tbb`` keeps parallel kernels in forked
children.

A rule has the signature ``rule(p, g, *slots, *scalars) -> (p, *slots)``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic, register_jitable

from .flat import GradAt, Tensors

Rule = Callable[..., tuple]
#: A bucket's flat gradient, one 1-D array per tensor stepped, or (the fused engine only) their addresses.
Gradient = np.ndarray | list[np.ndarray] | GradAt

PARALLEL_MIN_SIZE = 1 << 15
"""Below this many elements the serial kernel is faster than waking the thread pool."""


def run_numpy(rule: Rule, p: np.ndarray, g: np.ndarray, slots: Sequence[np.ndarray], scalars: tuple) -> None:
    """Reference engine: evaluate ``rule`` on whole arrays, then store results in place."""
    results = rule(p, g, *slots, *scalars)
    for target, value in zip((p, *slots), results):
        target[...] = value


def run_fused(rule: Rule, p: np.ndarray, g: np.ndarray, slots: Sequence[np.ndarray], scalars: tuple) -> None:
    """Fused engine: one numba kernel call reads and writes each element once."""
    kernels = _kernels(rule, len(slots))
    kernel = kernels.parallel if p.size >= PARALLEL_MIN_SIZE else kernels.serial
    kernel(p, g, *slots, *scalars)


def step_numpy(rule: Rule, tensors: Tensors, g: Gradient, slots: Sequence[np.ndarray], scalars: tuple) -> None:
    """The NumPy engine over some tensors of a bucket: the whole packed buffer, or tensor by tensor.

    ``g`` is the bucket's flat gradient, or one 1-D gradient array per tensor stepped.
    """
    if tensors.flat is not None and isinstance(g, np.ndarray):
        return run_numpy(rule, tensors.flat, g, slots, scalars)
    for k, (p, a) in enumerate(zip(tensors.views, tensors.offsets)):
        b = a + p.size
        run_numpy(rule, p, g[a:b] if isinstance(g, np.ndarray) else g[k], [s[a:b] for s in slots], scalars)


def step_fused(rule: Rule, tensors: Tensors, g: Gradient, slots: Sequence[np.ndarray], scalars: tuple) -> None:
    """The fused engine over some tensors of a bucket, in one kernel call: over the packed buffer, or over the
    tensors where they live (by address, one chunk of at most ``flat.CHUNK`` elements per parallel task)."""
    kernel, arrays = fused_call(rule, tensors, g, slots)
    kernel(*arrays, *scalars)


def fused_call(rule: Rule, tensors: Tensors, g: Gradient, slots: Sequence[np.ndarray]) -> tuple[Kernel, tuple]:
    """The kernel ``step_fused`` calls for these tensors, gradient and slots, and its arguments before the
    scalars (arrays, addresses): valid as long as those arrays are."""
    kernels = _kernels(rule, len(slots))
    if tensors.flat is not None and isinstance(g, np.ndarray):
        kernel = kernels.parallel if tensors.size >= PARALLEL_MIN_SIZE else kernels.serial
        return kernel, (tensors.flat, g, *slots)
    like = tensors.views[0][:0] if tensors.views else np.empty(0)
    if isinstance(g, GradAt):
        g_at = g.at
    elif isinstance(g, np.ndarray):
        g_at = g.ctypes.data + tensors.offsets_array * g.itemsize
    else:
        g_at = np.fromiter((x.ctypes.data for x in g), np.int64, len(g))
    kernel = kernels.chunked_parallel if tensors.size >= PARALLEL_MIN_SIZE else kernels.chunked_serial
    return kernel, (tensors.addresses, g_at, tensors.chunks, like, *slots)


def prepare(
    engine: str,
    rule: Rule,
    n_slots: int,
    dtype: np.dtype | None = None,
    scalars: tuple = (),
    size: int | None = None,
    packed: bool | None = None,
) -> None:
    """Load or compile the kernels a step will run (``engine="fused"``: the fused kernels of ``rule`` with
    ``n_slots`` state slots; nothing for the NumPy engine), before the step writes anything.

    Generates (or heals) the kernel file, so an unusable cache directory is handled here. With ``dtype`` and
    the ``scalars`` the kernel will receive (already cast), the machine code for that signature is loaded from
    numba's cache or compiled too (healing a corrupt ``.nbi``/``.nbc``): for the kernels a bucket of ``size``
    elements uses (serial or parallel; both when None), over a packed buffer or caller-owned tensors (``packed``;
    both when None). Raises ``KernelCacheError``.
    """
    if engine != "fused":
        return
    kernels = _kernels(rule, n_slots)
    if dtype is None:
        return
    parallel = None if size is None else size >= PARALLEL_MIN_SIZE
    key = (rule, n_slots, dtype, tuple(map(type, scalars)), parallel, packed)
    if key in _PREPARED:  # a step's usual case: a set lookup, no typing
        return
    empty = np.empty(0, dtype=dtype)
    flat_args = (empty,) * (2 + n_slots) + tuple(scalars)
    at = np.empty(0, np.int64)
    chunked_args = (at, at, np.empty((0, 4), np.int64), *flat_args[1:])  # p_at, g_at, chunks, like, slots, scalars
    wanted = []
    if packed is None or packed:
        wanted += [(kernels.serial, kernels.parallel, flat_args)]
    if packed is None or not packed:
        wanted += [(kernels.chunked_serial, kernels.chunked_parallel, chunked_args)]
    for serial_kernel, parallel_kernel, args in wanted:
        if not parallel:
            serial_kernel.compile_for(args)
        if parallel is None or parallel:
            parallel_kernel.compile_for(args)
    _PREPARED.add(key)


_PREPARED: set[tuple] = set()


ENGINES: dict[str, Callable[..., None]] = {"numpy": step_numpy, "fused": step_fused}

_TEMPLATE = """\
# Generated by adamkit.engine from {module}.{name}; do not edit.
import numba
from adamkit.engine import at_address
from {module} import {name} as rule

_options = dict(cache=CACHE, nogil=True, error_model="numpy")


@numba.njit(**_options)
def serial({args}):
    for i in range(p.shape[0]):
        {outs} = rule({elems})


@numba.njit(parallel=True, **_options)
def parallel({args}):
    for i in numba.prange(p.shape[0]):
        {outs} = rule({elems})


@numba.njit(inline="always")
def _chunk(p_at, g_at, chunks, c, like, {sargs}):
    k, a, b, o = chunks[c, 0], chunks[c, 1], chunks[c, 2], chunks[c, 3]
    p_ = at_address(p_at[k] + a * like.itemsize, b - a, like)
    g_ = at_address(g_at[k] + a * like.itemsize, b - a, like)
    {slices}
    for i in range(b - a):
        {outs_} = rule({elems_})


@numba.njit(**_options)
def chunked_serial(p_at, g_at, chunks, like, {sargs}):
    for c in range(chunks.shape[0]):
        _chunk(p_at, g_at, chunks, c, like, {sargs})


@numba.njit(parallel=True, **_options)
def chunked_parallel(p_at, g_at, chunks, like, {sargs}):
    for c in numba.prange(chunks.shape[0]):
        _chunk(p_at, g_at, chunks, c, like, {sargs})
"""


@intrinsic
def _pointer(typingctx: Any, address: Any, like: Any) -> Any:
    """The integer ``address`` as a pointer to ``like``'s element type."""
    pointer = types.CPointer(like.dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(types.int64, like), codegen


@register_jitable
def at_address(address, n, like):  # noqa: ANN001, ANN201 (numba)
    """Inside a kernel: the ``n`` elements at ``address`` (of ``like``'s dtype) as a 1-D array."""
    return numba.carray(_pointer(address, like), (n,))


class Kernels(NamedTuple):
    serial: Kernel
    parallel: Kernel
    chunked_serial: Kernel
    chunked_parallel: Kernel


class KernelCacheError(RuntimeError):
    """A fused kernel could neither be loaded from nor compiled into the kernel cache (named in the message)."""


@cache
def _kernels(rule: Rule, n_slots: int) -> Kernels:
    params = list(inspect.signature(rule).parameters)
    arrays = ["p", "g", *(f"s{k}" for k in range(n_slots))]
    scalars = [f"a{k}" for k in range(len(params) - len(arrays))]
    source = _TEMPLATE.format(
        module=rule.__module__,
        name=rule.__name__,
        args=", ".join(arrays + scalars),
        sargs=", ".join(arrays[2:] + scalars),
        outs="(" + "".join(f"{a}[i], " for a in arrays if a != "g") + ")",
        elems=", ".join([f"{a}[i]" for a in arrays] + scalars),
        slices="; ".join(f"{a}_ = {a}[o : o + b - a]" for a in arrays[2:]) or "pass",
        outs_="(" + "".join(f"{a}_[i], " for a in arrays if a != "g") + ")",
        elems_=", ".join([f"{a}_[i]" for a in arrays] + scalars),
    )
    digest = hashlib.sha256((source + _package_fingerprint() + _rule_fingerprint(rule)).encode()).hexdigest()[:16]
    return _load_kernels(f"{rule.__name__}_{n_slots}_{digest}", source)


class Kernel:
    """One compiled loop (a numba dispatcher) and where its cache lives; calls it safely.

    A parallel kernel runs serially in a child forked after an OpenMP launch, and under a lock unless the
    threading layer is thread-safe (see the module docstring). A kernel whose cached machine code fails to
    load is healed: its numba cache files are deleted and it is compiled afresh.
    """

    def __init__(self, dispatcher: Callable, path: Path | None, serial: Kernel | None = None):
        self.dispatcher, self.path, self.serial = dispatcher, path, serial

    def __call__(self, *args: Any) -> Any:
        if self.serial is not None:  # the parallel kernel
            if _PROCESS.serial_only:
                return self.serial(*args)
            if _PROCESS.layer not in _THREAD_SAFE_LAYERS:
                with _PROCESS.lock:
                    result = self._run(args)
                    _PROCESS.layer = _threading_layer()
                return result
        return self._run(args)

    def _run(self, args: tuple) -> Any:
        try:
            return self.dispatcher(*args)
        except Exception as error:  # the kernel has not run: only compiling or loading it can fail
            self._heal(error)
            try:
                return self.dispatcher(*args)
            except Exception as again:
                raise self._error(again) from again

    def compile_for(self, args: tuple) -> None:
        """Load or compile the machine code for arguments like ``args`` without running it."""
        signature = tuple(numba.typeof(a) for a in args)
        try:
            self.dispatcher.compile(signature)
        except Exception as error:
            self._heal(error)
            try:
                self.dispatcher.compile(signature)
            except Exception as again:
                raise self._error(again) from again

    def _heal(self, error: Exception) -> None:
        """Delete this kernel's numba cache files (so the next attempt recompiles), or raise naming the cache."""
        if self.path is None:  # not from adamkit's kernel cache: nothing to heal, the error stands as it is
            raise error
        directory = Path(getattr(getattr(self.dispatcher, "_cache", None), "cache_path", self.path.parent))
        removed = False
        try:
            for folder in {directory, self.path.parent / "__pycache__"}:
                for file in folder.glob(f"{self.path.stem}.*"):
                    if file.suffix in (".nbi", ".nbc"):
                        file.unlink(missing_ok=True)
                        removed = True
        except OSError:
            removed = False
        if not removed:
            raise self._error(error) from error

    def _error(self, error: Exception) -> KernelCacheError:
        where = f"kernel cache directory {self.path.parent}" if self.path else "no disk cache"
        return KernelCacheError(
            f"adamkit: fused kernel {getattr(self.dispatcher, '__name__', '?')} failed to load or compile "
            f"({where}; delete it or set ADAMKIT_CACHE_DIR to another directory): {type(error).__name__}: {error}"
        )


def process_safe(parallel: Callable, serial: Callable) -> Kernel:
    """A ``parallel=True`` numba function guarded like adamkit's kernels: ``serial`` (the same loop compiled
    without ``parallel``) runs instead in a child forked after an OpenMP launch, and calls are serialised while
    the threading layer is not known to be thread-safe."""
    return Kernel(parallel, None, Kernel(serial, None))


def _load_kernels(stem: str, source: str) -> Kernels:
    """Import the kernel module ``stem`` from the first usable cache directory (writing or healing its file),
    else compile it without a disk cache (with a warning saying why)."""
    problems = []
    with _LOAD_LOCK:
        for directory in _cache_dirs():
            try:
                path = _kernel_file(directory, stem, source.replace("cache=CACHE", "cache=True"))
                return _import_kernels(stem, path.read_text(), path)
            except Exception as error:  # unwritable, not a directory, or numba finds no cache locator for it
                problems.append(f"{directory}: {type(error).__name__}: {error}")
        warnings.warn(
            "adamkit: no usable kernel cache directory, compiling without a disk cache (" + "; ".join(problems) + ")",
            RuntimeWarning,
            stacklevel=4,
        )
        return _import_kernels(stem, source.replace("cache=CACHE", "cache=False"), None)


def _kernel_file(directory: Path, stem: str, source: str) -> Path:
    """``directory/stem.py`` holding exactly ``source``: written atomically if missing or different."""
    path = directory / f"{stem}.py"
    try:
        if path.read_bytes() == source.encode():
            return path
    except OSError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _import_kernels(stem: str, source: str, path: Path | None) -> Kernels:
    """Execute the kernel module from ``source`` (no ``.pyc`` is involved) and wrap its two loops."""
    name = f"_adamkit_kernel_{stem}"  # registered, so numba's cache can re-import it by name
    module = ModuleType(name)
    module.__file__ = str(path) if path else f"<adamkit kernel {stem}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    sys.modules[name] = module
    serial, chunked_serial = Kernel(module.serial, path), Kernel(module.chunked_serial, path)
    return Kernels(
        serial,
        Kernel(module.parallel, path, serial),
        chunked_serial,
        Kernel(module.chunked_parallel, path, chunked_serial),
    )


@cache
def _package_fingerprint() -> str:
    """Hash of adamkit's own source and numba's version: any change yields new kernel files."""
    h = hashlib.sha256(numba.__version__.encode())
    for file in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(file.read_bytes())
    return h.hexdigest()


_NOT_HASHED = ("numpy", "numba", "llvmlite", "math", "cmath", "builtins")


def _rule_fingerprint(rule: Rule) -> str:
    """Hash of the source files of the rule's module and of every module whose functions (or which, as a
    module) it references, followed transitively through their globals (numpy and numba excepted: their version
    is what matters)."""
    files: dict[str, bytes] = {}
    seen: set[int] = set()
    todo: list[Any] = [rule]
    while todo:
        obj = todo.pop()
        obj = getattr(obj, "py_func", obj)  # a numba dispatcher: its Python function
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        module = obj if isinstance(obj, ModuleType) else sys.modules.get(getattr(obj, "__module__", "") or "")
        if module is None or module.__name__.split(".")[0] in _NOT_HASHED:
            continue
        file = getattr(module, "__file__", None)
        if file and file not in files and file.endswith(".py"):
            try:
                files[file] = Path(file).read_bytes()
            except OSError:
                files[file] = b""
        code = getattr(obj, "__code__", None)
        if code is not None:
            glob = getattr(obj, "__globals__", {})
            todo.extend(glob[n] for n in _names(code) if n in glob)
    h = hashlib.sha256()
    for file in sorted(files):
        h.update(file.encode() + b"\0" + files[file])
    return h.hexdigest()


def _names(code: CodeType) -> set[str]:
    """Global names used by ``code`` and the code objects nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
    return names


def _cache_dirs() -> list[Path]:
    """``$ADAMKIT_CACHE_DIR/kernels``, else ``$XDG_CACHE_HOME/adamkit/kernels`` (``~/.cache/adamkit/kernels``);
    then ``<tempdir>/adamkit-<uid>/kernels`` as the fallback."""
    base = os.environ.get("ADAMKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "adamkit"
    )
    fallback = Path(tempfile.gettempdir()) / f"adamkit-{os.getuid()}"
    return list(dict.fromkeys([Path(base) / "kernels", fallback / "kernels"]))


# ------------------------------------------------------------------------------------------- process life
_THREAD_SAFE_LAYERS = ("tbb", "omp")
_LOAD_LOCK = threading.RLock()


class _ProcessState:
    """Per-process facts about numba's thread pool, reset in a forked child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # serialises parallel launches on a layer that is not thread-safe
        self.layer: str | None = None  # numba's threading layer, once a parallel launch has chosen it
        self.serial_only = False  # forked after an OpenMP launch: parallel regions would abort

    def after_fork_in_child(self) -> None:
        global _LOAD_LOCK
        self.lock, _LOAD_LOCK = threading.Lock(), threading.RLock()  # another thread may have held them at the fork
        self.layer = _threading_layer()
        self.serial_only = self.serial_only or self.layer == "omp"


def _threading_layer() -> str | None:
    """numba's threading layer, None before its first parallel launch."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


_PROCESS = _ProcessState()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PROCESS.after_fork_in_child())
