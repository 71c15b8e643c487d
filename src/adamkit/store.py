"""The parameter store: which arrays an optimizer steps, where each lives in its flat buffers, and the caller's
containers that hold them.

``add_param_group`` takes a group's dict or list of arrays (the caller's own, updated in place; or, ``packed``,
copied into one adamkit-owned buffer whose views are put back), refuses what one step could not update
correctly (not C-contiguous, read-only, overlapping), and before every step adopts arrays the caller put into
those containers in place of the ones it passed. ``params``/``grads`` are the named views; ``_match_grads``
checks gradients passed to ``step`` against the layout.
"""

from __future__ import annotations

import operator
import warnings
import weakref
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

import numpy as np

from . import lowp
from .flat import SUPPORTED_DTYPES, FlatBuffer, Segment

Params = MutableMapping[str, np.ndarray] | list | None
Grads = Mapping[str, Any] | Sequence[Any]


class NamedViews(Mapping):
    """Read-only mapping from parameter name to a view into a flat buffer; an int indexes by position."""

    def __init__(self, views: dict[str, np.ndarray]):
        self._views = views
        self._order = list(views)

    def __getitem__(self, key: str | int) -> np.ndarray:
        if isinstance(key, int):
            return self._views[self._order[key]]
        return self._views[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"NamedViews({', '.join(self._order)})"


class ParamStore:
    """Mixin of ``Optimizer``: the parameters, their buffers and containers (attributes set by
    ``Optimizer.__init__``; ``_check`` and ``defaults`` come from it too)."""

    _STRUCTURE: ClassVar[tuple[str, ...]]
    defaults: dict[str, Any]
    param_groups: list[dict[str, Any]]
    _flats: list[list[FlatBuffer]]  # per group, one buffer per dtype
    _where: dict[str, tuple[FlatBuffer, Segment]]  # name → its buffer and segment
    _param_views: dict[str, np.ndarray]
    _grad_views: dict[str, np.ndarray]
    _containers: list[tuple[Any, list | None]]  # each group's dict or list, and the dict's keys
    _watched: list[int]  # the groups whose containers steps check for replaced arrays
    _shapes: list[tuple[tuple[int, ...], np.dtype]]

    def add_param_group(self, param_group: dict[str, Any], *, packed: bool = False, watch: bool = True) -> None:
        """Add a group ``{"params": dict or list of arrays, **hyperparameters}``.

        The arrays themselves are the parameters: every step updates them in place, wherever the caller keeps
        references to them (C-contiguous, writeable, not overlapping one another). If the caller later puts a
        new array into the dict or list (``params["w"] = params["w"] + 1``), the next step adopts it.

        ``packed=True`` (for front ends whose parameter objects may be rebound: DeZero, torch, minimize):
        adamkit copies the arrays into one flat buffer it owns and puts views of it back into the container.
        ``watch=False`` (for a front end whose container is its own, never the caller's): steps do not look
        for replaced entries in it.
        """
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        container = param_group["params"]
        named = _named_arrays(container, start=len(self._where), packed=packed)
        taken = [name for name, _ in named if name in self._where]
        if taken or len({n for n, _ in named}) != len(named):
            raise ValueError(f"parameter names must be unique across groups; repeated: {taken or named}")
        seen = {id(view) for view in self._param_views.values()}
        for name, array in named:
            if id(array) in seen:
                raise ValueError(f"parameter {name!r} appears more than once (in this or another param group)")
            seen.add(id(array))
        if not packed:
            _refuse_overlaps([*self._caller_arrays(), *named])
            _warn_if_shared(self, named)
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k not in self._STRUCTURE}}
        self._check(group)

        flats = [
            FlatBuffer.of([(n, a) for n, a in named if a.dtype == dtype], packed=packed)
            for dtype in dict.fromkeys(a.dtype for _, a in named)
        ]
        for flat in flats:
            self._low_precision(flat)
        for flat in flats:
            for i, seg in enumerate(flat.segments):
                self._where[seg.name] = (flat, seg)
                self._param_views[seg.name] = flat.params[i]
                self._grad_views[seg.name] = seg.view(flat.grad)
        names = [name for name, _ in named]
        if packed:
            _rebind(container, names, self._param_views)
        group["params"] = [self._param_views[n] for n in names]
        group["param_names"] = names
        self.param_groups.append(group)
        self._flats.append(flats)
        self._containers.append((container, list(container) if isinstance(container, Mapping) else None))
        if watch:
            self._watched.append(len(self.param_groups) - 1)

    def _low_precision(self, flat: FlatBuffer) -> None:
        """Give a new bucket its storage, or refuse it (the optimizer's low-precision options; here: nothing)."""

    def __getstate__(self) -> dict:
        """For copy and pickle: the views into buffers are rebuilt on the other side (``__setstate__``)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_where", "_param_views", "_grad_views")}

    def __setstate__(self, state: dict) -> None:
        """Rebind the copy: its parameters, ``opt.grads`` and its groups' (and packed containers') entries are
        views of *its* buffers, never of the original's."""
        self.__dict__.update(state)
        self._where, self._param_views, self._grad_views = {}, {}, {}
        for group, flats, (container, keys) in zip(self.param_groups, self._flats, self._containers):
            for flat in flats:
                for seg, array in zip(flat.segments, flat.params):
                    self._where[seg.name] = (flat, seg)
                    self._param_views[seg.name] = array
                    self._grad_views[seg.name] = seg.view(flat.grad)
            group["params"] = [self._param_views[n] for n in group["param_names"]]
            if any(flat.data is not None for flat in flats):  # packed: the container holds views of the buffer
                for i, name in enumerate(group["param_names"]):
                    container[keys[i] if keys is not None else i] = self._param_views[name]

    def _caller_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` of every parameter that is a caller's own array (not a view of a packed buffer)."""
        for flats in self._flats:
            for flat in flats:
                if flat.data is None:
                    yield from zip((seg.name for seg in flat.segments), flat.params)

    def _adopt_rebound(self) -> None:
        """Adopt arrays the caller put into a group's dict or list in place of the ones it passed (a packed
        group copies them into its buffer and puts the view back).

        Every replacement is validated (shape, dtype, layout, overlaps) before any is adopted.
        """
        if not self._watched:  # every group's container is a front end's own
            return
        changes: list[tuple[int, int, np.ndarray]] = []  # (group index, position in the group, new array)
        for g in self._watched:
            group, (container, keys) = self.param_groups[g], self._containers[g]
            if _unchanged(container, keys, group["params"]):
                continue
            current = _entries(container, keys, len(group["params"]))
            for i, (array, old) in enumerate(zip(current, group["params"])):
                if array is not old:
                    name = group["param_names"][i]
                    flat, seg = self._where[name]
                    _check_array(name, array, packed=flat.data is not None)
                    if array.shape != seg.shape or array.dtype != flat.dtype:
                        raise ValueError(
                            f"parameter {name!r} was replaced by an array of shape {array.shape} and dtype "
                            f"{array.dtype}; expected shape {seg.shape} and dtype {flat.dtype}"
                        )
                    changes.append((g, i, array))
        if not changes:
            return
        new = {self.param_groups[g]["param_names"][i]: array for g, i, array in changes}
        caller_owned = [(n, a) for n, a in new.items() if self._where[n][0].data is None]
        _refuse_overlaps([(n, a) for n, a in self._caller_arrays() if n not in new] + caller_owned)
        for g, i, array in changes:
            group, (container, keys) = self.param_groups[g], self._containers[g]
            name = group["param_names"][i]
            flat, seg = self._where[name]
            flat.replace(flat.segments.index(seg), array)
            if flat.data is not None:
                container[keys[i] if keys is not None else i] = self._param_views[name]
            else:
                self._param_views[name] = array
            group["params"][i] = self._param_views[name]

    def flat_buffers(self) -> Iterator[tuple[dict[str, Any], FlatBuffer]]:
        """``(param group, flat buffer)`` pairs: one buffer per group and dtype."""
        for group, flats in zip(self.param_groups, self._flats):
            for flat in flats:
                yield group, flat

    @property
    def params(self) -> NamedViews:
        """Every parameter, by name, as a live view into its flat buffer."""
        return NamedViews(self._param_views)

    @property
    def grads(self) -> NamedViews:
        """Every gradient, by name, as a writable view: fill them in place, then call ``step()``."""
        return NamedViews(self._grad_views)

    def _buckets(self) -> Iterator[FlatBuffer]:
        for flats in self._flats:
            yield from flats

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        for flat in self._buckets():
            flat.grad.fill(0)

    def _match_grads(self, grads: Grads) -> dict[str, np.ndarray]:
        """``{name: gradient}``, each checked against its parameter (an ndarray of its shape and dtype)."""
        names = list(self._where)
        if isinstance(grads, Mapping):
            if len(grads) != len(names) or not all(map(grads.__contains__, names)):
                missing = [n for n in names if n not in grads]
                extra = [k for k in grads if k not in self._where]
                raise KeyError(f"grads must have exactly the parameter names; missing {missing}, extra {extra}")
            arrays = list(map(grads.__getitem__, names))
        elif isinstance(grads, Sequence) and not isinstance(grads, (str, bytes)):
            if len(grads) != len(names):
                raise ValueError(f"grads has {len(grads)} entries, expected {len(names)} (one per parameter)")
            arrays = list(grads)
        else:
            raise TypeError(f"grads must be a dict by name or a list in parameter order, got {type(grads)}")
        layout = self._layout()
        try:  # the common case, checked for all at once
            if [(g.shape, g.dtype) for g in arrays] == layout and all(isinstance(g, np.ndarray) for g in arrays):
                return dict(zip(names, arrays))
        except AttributeError:
            pass
        for name, g, (shape, dtype) in zip(names, arrays, layout):
            if not isinstance(g, (np.ndarray, np.generic)):
                raise TypeError(f"grads[{name!r}] must be a NumPy array, got {type(g).__name__}")
            if g.shape != shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}, expected {shape}")
            if g.dtype != dtype and not (dtype == lowp.BFLOAT16 and g.dtype == np.float32):
                expected = f"{dtype} or float32" if dtype == lowp.BFLOAT16 else str(dtype)
                raise TypeError(f"grads[{name!r}] has dtype {g.dtype}, expected {expected}")
        return {name: np.asarray(g) for name, g in zip(names, arrays)}

    def _layout(self) -> list[tuple[tuple[int, ...], np.dtype]]:
        """``(shape, dtype)`` of every parameter, in name order (kept until a group is added)."""
        if len(self._shapes) != len(self._where):
            self._shapes = [(seg.shape, flat.dtype) for flat, seg in self._where.values()]
        return self._shapes


def _as_groups(params: Params) -> list[dict[str, Any]]:
    if isinstance(params, Mapping) or isinstance(params, np.ndarray):
        return [{"params": params}]
    if isinstance(params, list):
        if params and all(isinstance(p, dict) for p in params):
            return list(params)
        return [{"params": params}]
    raise TypeError(
        "params must be a dict {name: array}, a list of arrays or a list of param-group dicts "
        f"(adamkit puts live views back into it); got {type(params).__name__}"
    )


def _named_arrays(container: Any, start: int, *, packed: bool) -> list[tuple[str, np.ndarray]]:
    if isinstance(container, MutableMapping):
        bad = [k for k in container if not isinstance(k, str)]
        if bad:
            raise TypeError(f"a params dict must be keyed by parameter names (str); got keys {bad}")
        items = list(container.items())
    elif isinstance(container, list):
        items = [(str(start + i), v) for i, v in enumerate(container)]
    else:
        raise TypeError(
            "a group's params must be a dict {name: array} or a list of arrays; "
            f"got {type(container).__name__}"
        )
    for name, array in items:
        _check_array(name, array, packed=packed)
    return items


def _check_array(name: str, array: Any, *, packed: bool) -> None:
    """A parameter must be a float32/float64 ndarray; one updated in place must be C-contiguous and writeable."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"parameter {name!r} must be a NumPy array, got {type(array).__name__}")
    if array.dtype not in SUPPORTED_DTYPES and array.dtype != lowp.BFLOAT16:
        raise TypeError(f"parameter {name!r} has dtype {array.dtype}; supported: float32, float64, ml_dtypes.bfloat16")
    if packed:
        return
    if not array.flags.c_contiguous:
        raise ValueError(
            f"parameter {name!r} is not C-contiguous (a strided view or a transposed array): adamkit updates "
            "parameters in place and cannot do so through a copy; pass np.ascontiguousarray(...) and keep that"
        )
    if not array.flags.writeable:
        raise ValueError(f"parameter {name!r} is read-only: adamkit updates parameters in place")


def _unchanged(container: Any, keys: list | None, params: list[np.ndarray]) -> bool:
    """The common case, cheaply: the container holds exactly the arrays the group steps."""
    if len(container) != len(params):
        return False
    try:
        entries = container if keys is None else map(container.__getitem__, keys)
        return all(map(operator.is_, entries, params))
    except KeyError:
        return False


def _entries(container: Any, keys: list | None, n: int) -> list:
    """A group's dict (by its original ``keys``) or list as it stands now; refuses added or removed entries."""
    if keys is None:
        if len(container) != n:
            raise ValueError(
                f"the params list of a param group changed length ({n} → {len(container)}); add new parameters "
                "with add_param_group"
            )
        return list(container)
    if len(container) != len(keys) or any(k not in container for k in keys):
        added, removed = [k for k in container if k not in keys], [k for k in keys if k not in container]
        raise KeyError(
            f"the params dict of a param group changed its keys since the optimizer took it (added {added}, "
            f"removed {removed}); add new parameters with add_param_group"
        )
    return [container[k] for k in keys]


def _refuse_overlaps(named: list[tuple[str, np.ndarray]]) -> None:
    """Refuse caller arrays whose memory overlaps (views of one array): one step would update it twice."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, name) for name, a in named if a.size)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(
                f"parameters {first!r} and {second!r} share memory (views of one array); each element must "
                "belong to one parameter: pass the whole array, or separate copies"
            )


_LIVE: weakref.WeakSet[ParamStore] = weakref.WeakSet()
"""Every optimizer alive in this process, to warn when two step the same arrays."""


def _warn_if_shared(opt: ParamStore, named: list[tuple[str, np.ndarray]]) -> None:
    """Warn (not refuse: re-running ``opt = Adam(params)`` in a notebook keeps the old one alive a moment) when
    another live optimizer already steps memory of these arrays: both would update it."""
    for other in list(_LIVE):
        if other is opt:
            continue
        theirs = list(other._caller_arrays())
        try:
            _refuse_overlaps(theirs + list(named))
        except ValueError:
            warnings.warn(
                f"{type(opt).__name__}: these arrays are already stepped by another live optimizer "
                f"({type(other).__name__}); both will update them. Delete the other one if it is stale.",
                RuntimeWarning,
                stacklevel=4,
            )
            return


def _rebind(container: Any, names: list[str], views: Mapping[str, np.ndarray]) -> None:
    """Put the packed buffer's views back into the caller's dict or list."""
    if isinstance(container, MutableMapping):
        for key in list(container):
            container[key] = views[key]
    else:
        container[:] = [views[n] for n in names]
