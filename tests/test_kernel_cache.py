"""The fused kernel cache: unusable directories fall back, corrupt files heal, edited rules never run stale.

Every scenario runs real programs in subprocesses against a cache directory of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

# One step of AdamW with a DecoupledWeightDecay hook (it writes the params before the kernel runs) on a buffer
# large enough for the parallel kernel, plus a small SGD buffer (serial kernel); both engines, results compared.
PROGRAM = """
import json, warnings
import numpy as np
import adamkit

def run(engine):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal(1 << 15), "b": rng.standard_normal(5)}
    opt = adamkit.Adam(params, lr=0.1, engine=engine)
    opt.add_hook(adamkit.DecoupledWeightDecay(0.5))
    small = {"x": rng.standard_normal(7).astype(np.float32)}
    sgd = adamkit.SGD(small, lr=0.1, engine=engine)
    for _ in range(3):
        opt.step({k: rng.standard_normal(v.shape) for k, v in params.items()})
        sgd.step({"x": rng.standard_normal(7).astype(np.float32)})
    return [params["w"], params["b"], small["x"]]

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fused = run("fused")
reference = run("numpy")
print(json.dumps({
    "equal": all(a.tobytes() == b.tobytes() for a, b in zip(fused, reference)),
    "warnings": [str(w.message) for w in caught if "kernel cache" in str(w.message)],
}))
"""


def run_program(source: str, env: dict[str, str], cwd: Path | None = None, extra_path: str = "") -> dict:
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(p for p in (SRC, extra_path) if p)}
    done = subprocess.run(
        [sys.executable, "-c", source], env=full_env, capture_output=True, text=True, timeout=240, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernel_files(cache: Path, kind: str) -> list[Path]:
    folder = cache / "kernels" if kind == "py" else cache / "kernels" / "__pycache__"
    return sorted(folder.glob(f"*.{kind}"))


def test_cache_dir_under_a_regular_file_falls_back_to_a_temp_dir(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file: nothing can be created under it, even by root")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = run_program(PROGRAM, {"ADAMKIT_CACHE_DIR": str(blocker / "cache"), "TMPDIR": str(tmp)})
    assert out == {"equal": True, "warnings": []}
    assert list((tmp / f"adamkit-{os.getuid()}" / "kernels").glob("adam_rule_*.py"))


def read_only_mount_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && ! touch "$1/x" 2>/dev/null'
    try:
        done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(probe)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def run_with_read_only(directory: Path, source: str, env: dict[str, str]) -> dict:
    """``source`` in a private mount namespace where ``directory`` is a read-only bind mount (root included)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3"'
    full_env = {**os.environ, **env, "PYTHONPATH": SRC}
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(directory), sys.executable, source],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_read_only_cache_dir(tmp_path):
    """A read-only kernels directory (a read-only bind mount, which stops root too): empty, the kernels go to the
    temp fallback; already filled by an earlier run, its kernels are used as they are."""
    if not read_only_mount_works(tmp_path):
        pytest.skip("needs unshare and mount (root in a private mount namespace) to make a directory read-only")
    kernels = tmp_path / "cache" / "kernels"
    kernels.mkdir(parents=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"ADAMKIT_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp)}
    assert run_with_read_only(kernels, PROGRAM, env) == {"equal": True, "warnings": []}
    assert not list(kernels.iterdir())
    assert list((tmp / f"adamkit-{os.getuid()}" / "kernels").glob("adam_rule_*.py"))

    run_program(PROGRAM, {"ADAMKIT_CACHE_DIR": str(tmp_path / "cache")})  # fill it, then make it read-only
    filled = sorted(p.name for p in kernels.rglob("*"))
    shutil.rmtree(tmp / f"adamkit-{os.getuid()}")
    assert run_with_read_only(kernels, PROGRAM, env) == {"equal": True, "warnings": []}
    assert sorted(p.name for p in kernels.rglob("*")) == filled
    assert not (tmp / f"adamkit-{os.getuid()}").exists()  # the read-only kernels were enough


def test_no_usable_cache_dir_compiles_without_disk_cache(tmp_path):
    """Both the configured directory and the temp fallback are unusable: the step still runs (with a warning)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kernels").write_text("a file where the kernels directory should be")
    tmp = tmp_path / "tmp"
    (tmp / f"adamkit-{os.getuid()}").mkdir(parents=True)
    (tmp / f"adamkit-{os.getuid()}" / "kernels").write_text("same for the fallback")
    out = run_program(PROGRAM, {"ADAMKIT_CACHE_DIR": str(cache), "TMPDIR": str(tmp)})
    assert out["equal"]
    assert out["warnings"] and str(cache / "kernels") in out["warnings"][0]


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory) -> Path:
    """A kernel cache filled by one run of PROGRAM (tests copy it rather than compile again)."""
    cache = tmp_path_factory.mktemp("filled") / "cache"
    assert run_program(PROGRAM, {"ADAMKIT_CACHE_DIR": str(cache)}) == {"equal": True, "warnings": []}
    return cache


def copy_of(filled_cache: Path, tmp_path: Path) -> dict[str, str]:
    shutil.copytree(filled_cache, tmp_path / "cache")  # copy2: times kept, so numba's index stays valid
    return {"ADAMKIT_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.parametrize("kind", ["py", "nbi", "nbc"])
def test_truncated_kernel_files_heal(tmp_path, kind, filled_cache):
    env = copy_of(filled_cache, tmp_path)
    files = kernel_files(tmp_path / "cache", kind)
    assert files, f"no .{kind} kernel files were written"
    sizes = {f: f.stat().st_size for f in files}
    for i, f in enumerate(files):
        f.write_bytes(f.read_bytes()[: [0, 7, f.stat().st_size // 2][i % 3]])
    assert run_program(PROGRAM, env) == {"equal": True, "warnings": []}  # healed: same results
    for f in files:  # rewritten whole (compiled code embeds the directory's path: sizes may differ a little)
        assert f.exists() and f.stat().st_size > sizes[f] * 0.9, f
        if kind == "py":
            assert f.read_bytes() == (filled_cache / "kernels" / f.name).read_bytes()
    assert run_program(PROGRAM, env) == {"equal": True, "warnings": []}  # and the healed cache loads


def test_bit_flipped_kernel_source_is_rewritten(tmp_path, filled_cache):
    env = copy_of(filled_cache, tmp_path)
    (py,) = [f for f in kernel_files(tmp_path / "cache", "py") if f.name.startswith("adam_rule")]
    good = py.read_bytes()
    flipped = bytearray(good)
    flipped[good.index(b"rule(")] ^= 0x01  # 'rule(' -> 'sule(': a NameError if it were executed
    py.write_bytes(bytes(flipped))
    assert run_program(PROGRAM, env) == {"equal": True, "warnings": []}
    assert py.read_bytes() == good


def test_error_that_remains_names_the_cache_dir(tmp_path, filled_cache):
    """An index file that cannot be read nor deleted (a directory in its place) gives KernelCacheError naming
    the cache directory, from ``prepare`` (before a step) and from a step alike."""
    env = copy_of(filled_cache, tmp_path)
    for index in kernel_files(tmp_path / "cache", "nbi"):
        index.unlink()
        index.mkdir()
        (index / "keep").write_text("x")
    program = """
import json
import numpy as np
import adamkit
from adamkit.engine import KernelCacheError, prepare
from adamkit.flat import Run

params = {"x": np.ones(7, np.float32)}
sgd = adamkit.SGD(params, lr=0.1)
rule, slots, scalars = sgd._plan(sgd.param_groups[0], Run(np.dtype(np.float32), {}, {}), 1)
messages = []
try:
    cast = tuple(v if isinstance(v, bool) else np.float32(v) for v in scalars)
    prepare("fused", rule, len(slots), np.dtype(np.float32), cast, 7)
except KernelCacheError as e:
    messages.append(str(e))
try:
    sgd.step({"x": np.ones(7, np.float32)})
except KernelCacheError as e:
    messages.append(str(e))
print(json.dumps({"messages": messages, "unchanged": bool((params["x"] == 1).all())}))
"""
    out = run_program(program, env)
    assert out["unchanged"] and len(out["messages"]) == 2
    for message in out["messages"]:
        assert str(tmp_path / "cache" / "kernels") in message


RULE_MODULE = """
from adamkit.elementwise import elementwise
from userhelp import scaled


@elementwise
def user_rule(p, g, lr):
    return (p - scaled(g, lr),)
"""
HELP_MODULE = """
from adamkit.elementwise import elementwise


@elementwise
def scaled(g, lr):
    return {body}
"""
USER_PROGRAM = """
import json
import numpy as np
from adamkit.optimizer import Optimizer
from userrule import user_rule


class UserSGD(Optimizer):
    def __init__(self, params, lr, engine="fused"):
        super().__init__(params, {"lr": lr}, engine=engine)

    def _check(self, group):
        pass

    def _plan(self, group, run, t):
        return user_rule, (), (group["lr"],)


out = {}
for engine in ("fused", "numpy"):
    params = {"w": np.linspace(-1, 1, 1 << 15), "b": np.arange(5.0)}
    opt = UserSGD(params, lr=0.25, engine=engine)
    opt.step({"w": np.ones(1 << 15), "b": np.ones(5)})
    out[engine] = [params["w"][:3].tolist(), params["b"].tolist()]
print(json.dumps(out))
"""


def test_edited_user_rule_never_runs_a_stale_kernel(tmp_path):
    """Edit the user's rule module, then a helper module it calls: each edit reaches the fused kernel."""
    user = tmp_path / "user"
    user.mkdir()
    env = {"ADAMKIT_CACHE_DIR": str(tmp_path / "cache")}
    (user / "userhelp.py").write_text(HELP_MODULE.format(body="lr * g"))
    (user / "userrule.py").write_text(RULE_MODULE)
    first = run_program(USER_PROGRAM, env, extra_path=str(user))
    assert first["fused"] == first["numpy"] and first["fused"][1] == [-0.25, 0.75, 1.75, 2.75, 3.75]

    (user / "userrule.py").write_text(RULE_MODULE.replace("(p - scaled(g, lr),)", "(p + scaled(g, lr),)"))
    second = run_program(USER_PROGRAM, env, extra_path=str(user))
    assert second["fused"] == second["numpy"] and second["fused"][1] == [0.25, 1.25, 2.25, 3.25, 4.25]

    (user / "userhelp.py").write_text(HELP_MODULE.format(body="lr * g + lr * g"))
    third = run_program(USER_PROGRAM, env, extra_path=str(user))
    assert third["fused"] == third["numpy"] and third["fused"][1] == [0.5, 1.5, 2.5, 3.5, 4.5]
