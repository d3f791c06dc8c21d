"""Dataset files are unpickled with an allow-list: a crafted file cannot run code, the real files still load."""

from __future__ import annotations

import base64
import builtins
import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import dataset_error as _error

from rolf.datasets.offline import load_trajectories, save_trajectories
from rolf.utils.safe_pickle import ALLOWED, ForbiddenGlobal, safe_loads

ROOT = Path(__file__).resolve().parents[2]


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _gzip(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(data)
    return path


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    """A 'dataset' whose unpickling would run `touch <marker>`."""
    marker = tmp_path / "pwned"
    traj = {"obs": np.zeros((3, 4), np.float32), "actions": np.zeros((3, 2), np.float32), "dones": np.zeros(3, np.float32),
            "x": _RunsCommand(f"touch {marker}")}
    return _gzip(tmp_path / "maze.gz", pickle.dumps([traj], protocol=pickle.HIGHEST_PROTOCOL)), marker


def test_a_pickle_that_runs_a_command_is_refused(tmp_path):
    path, marker = _crafted(tmp_path)
    msg = _error(path)
    recorded = f"{os.system.__module__}.system"  # 'posix.system': what pickle writes for os.system
    assert f"refused to unpickle the global '{recorded}'" in msg and "crafted to run code" in msg, msg
    assert msg.startswith(f"{path}: ")
    assert not marker.exists()


def test_a_refused_global_does_not_import_its_module(tmp_path, monkeypatch):
    name = f"skimo_side_effect_{os.getpid()}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef func():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Written by hand (pickling `func` would import the module): GLOBAL '<name> func', (), REDUCE, STOP; and the
    # same with protocol 4's STACK_GLOBAL.
    proto2 = b"\x80\x02c" + name.encode() + b"\nfunc\n)R."
    mod, fn = name.encode(), b"func"
    proto4 = b"\x80\x04\x8c" + bytes([len(mod)]) + mod + b"\x8c" + bytes([len(fn)]) + fn + b"\x93)R."
    for i, data in enumerate((proto2, proto4)):
        path = _gzip(tmp_path / f"crafted{i}.gz", data)
        msg = _error(path)
        assert f"refused to unpickle the global '{name}.func'" in msg
        assert name not in sys.modules and not marker.exists()
    try:  # the control: plain pickle does import the module (and would run its code)
        assert pickle.loads(proto2) == 1 and marker.exists()
    finally:
        sys.modules.pop(name, None)


def test_forbidden_global_message_stays_one_line():
    data = b"\x80\x04\x8c\x05os\nx\n\x8c\x06system\x93."
    with pytest.raises(ForbiddenGlobal) as e:
        safe_loads(data, "f.gz")
    assert "\n" not in str(e.value) and e.value.module == "os\nx\n" and e.value.name == "system"


def test_other_codecs_are_refused():
    # protocols 0-2 need _codecs.encode(<str>, 'latin1') only; any other codec is an error, not a lookup
    data = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(pickle.UnpicklingError, match="latin1"):
        safe_loads(data, "f.gz")


def _items() -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"obs": rng.normal(size=(6, 4)).astype(np.float32), "actions": rng.uniform(-1, 1, (6, 2)),  # float64
             "dones": np.array([0, 0, 1, 0, 0, 0], dtype=bool), "reward": np.float32(0.5), "step": np.int64(3),
             "success": np.bool_(True), "noncontig": np.arange(20.0).reshape(4, 5)[:, ::2], "scalar0d": np.array(2.0),
             "empty": np.zeros((0, 4), np.float32), "py": [1, 2.5, True, None, "s", b"raw", b"", (1, 2)]}
            for _ in range(2)]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, (np.ndarray, np.generic)):
            assert type(b[k]) is type(v) and b[k].dtype == v.dtype and b[k].shape == v.shape, k
            np.testing.assert_array_equal(b[k], v)
        else:
            assert b[k] == v and type(b[k]) is type(v), k


def test_files_written_by_save_trajectories_load(tmp_path):
    items = _items()
    path = tmp_path / "maze.gz"
    save_trajectories(path, items)  # protocol 5 (HIGHEST), as d4rl/generate.py writes
    out = load_trajectories(path, obs_dim=4, action_dim=2)
    assert len(out) == 2
    np.testing.assert_array_equal(out[0]["obs"], items[0]["obs"])
    np.testing.assert_array_equal(out[0]["actions"], items[0]["actions"].astype(np.float32))
    with gzip.open(path, "rb") as f:
        raw = safe_loads(f.read(), str(path))
    for a, b in zip(items, raw):
        _same(a, b)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_every_protocol_round_trips(tmp_path, protocol):
    items = _items()
    data = pickle.dumps(items, protocol=protocol)
    for a, b in zip(items, safe_loads(data, "mem")):
        _same(a, b)
    assert len(load_trajectories(_gzip(tmp_path / "m.gz", data), obs_dim=4, action_dim=2)) == 2


# numpy 1.26.4, pickle.dumps([item], protocol=5) of item = {"obs": arange(12, f32).reshape(3, 4) / 4,
# "actions": arange(12.).reshape(3, 4)[:, ::2], "dones": [False, False, True], "reward": float32(0.5),
# "success": bool_(True)}: references numpy.core.numeric._frombuffer (contiguous arrays), numpy.core.multiarray.
# _reconstruct + numpy.ndarray (the strided slice), numpy.core.multiarray.scalar and numpy.dtype.
NUMPY_1_26_PROTOCOL_5 = base64.b64decode(
    "gAWV5AEAAAAAAABdlH2UKIwDb2JzlIwSbnVtcHkuY29yZS5udW1lcmljlIwLX2Zyb21idWZmZXKUk5QoljAAAAAAAAAAAAAAAAAA"
    "gD4AAAA/AABAPwAAgD8AAKA/AADAPwAA4D8AAABAAAAQQAAAIEAAADBAlIwFbnVtcHmUjAVkdHlwZZSTlIwCZjSUiYiHlFKUKEsD"
    "jAE8lE5OTkr/////Sv////9LAHSUYksDSwSGlIwBQ5R0lFKUjAdhY3Rpb25zlIwVbnVtcHkuY29yZS5tdWx0aWFycmF5lIwMX3Jl"
    "Y29uc3RydWN0lJOUaAeMB25kYXJyYXmUk5RLAIWUQwFilIeUUpQoSwFLA0sChpRoCYwCZjiUiYiHlFKUKEsDaA1OTk5K/////0r/"
    "////SwB0lGKJQzAAAAAAAAAAAAAAAAAAAABAAAAAAAAAEEAAAAAAAAAYQAAAAAAAACBAAAAAAAAAJECUdJRijAVkb25lc5RoBSiW"
    "AwAAAAAAAAAAAAGUaAmMAmIxlImIh5RSlChLA4wBfJROTk5K/////0r/////SwB0lGJLA4WUaBB0lFKUjAZyZXdhcmSUaBSMBnNj"
    "YWxhcpSTlGgMQwQAAAA/lIaUUpSMB3N1Y2Nlc3OUaDBoKEMBAZSGlFKUdWEu")


def test_numpy_1x_pickles_load(tmp_path, monkeypatch):
    """numpy 1.x names its internals `numpy.core.*`: protocol 0/2 pickles as numpy 1.x writes them (our own
    bytes with the module renamed: GLOBAL is a text line) and a protocol-5 one written by numpy 1.26.4 load,
    with the names resolved from the allow-list: `numpy.core` (numpy 2's deprecated alias) is never imported."""
    items = _items()
    old_style = {}
    for protocol in (0, 2):
        data = pickle.dumps(items, protocol=protocol)
        for new, old in ((b"numpy.core.multiarray\n", b"numpy._core.multiarray\n"),
                         (b"numpy.core.numeric\n", b"numpy._core.numeric\n")):
            data = data.replace(b"c" + old, b"c" + new)
        assert b"numpy.core.multiarray\n_reconstruct" in data and b"numpy.core.multiarray\nscalar" in data
        assert b"numpy._core" not in data and b"_codecs\nencode" in data and b"__builtin__\nbytes" in data
        old_style[protocol] = data
    expected = {"obs": np.arange(12, dtype=np.float32).reshape(3, 4) / 4, "actions": np.arange(12.0).reshape(3, 4)[:, ::2],
                "dones": np.array([False, False, True]), "reward": np.float32(0.5), "success": np.bool_(True)}
    files = {p: _gzip(tmp_path / f"np1_{p}.gz", d) for p, d in old_style.items()}
    np126 = _gzip(tmp_path / "np126.gz", NUMPY_1_26_PROTOCOL_5)

    requested, modules_before = [], set(sys.modules)
    real_import = builtins.__import__

    def recording_import(name, *args, **kwargs):
        requested.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", recording_import)
    loaded = {p: safe_loads(d, f"np1_{p}") for p, d in old_style.items()}
    trajs = {p: load_trajectories(f, obs_dim=4, action_dim=2) for p, f in files.items()}
    loaded_126 = safe_loads(NUMPY_1_26_PROTOCOL_5, "np126")[0]
    trajs_126 = load_trajectories(np126, obs_dim=4, action_dim=2)
    monkeypatch.undo()

    assert not [m for m in requested if m == "numpy.core" or m.startswith("numpy.core.")], requested
    assert set(sys.modules) <= modules_before, set(sys.modules) - modules_before
    for protocol in (0, 2):
        for a, b in zip(items, loaded[protocol]):
            _same(a, b)
        assert len(trajs[protocol]) == 2
    _same(expected, loaded_126)
    np.testing.assert_array_equal(trajs_126[0]["obs"], expected["obs"])
    np.testing.assert_array_equal(trajs_126[0]["actions"], expected["actions"].astype(np.float32))


def test_allow_list_is_exactly_what_numpy_pickles_need():
    assert set(ALLOWED) == {
        ("numpy", "dtype"), ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
        ("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")}


def test_command_line_reports_a_crafted_dataset_in_one_line(tmp_path):
    path, marker = _crafted(tmp_path)
    args = [sys.executable, "run.py", "--config-name", "skimo_maze", f"log_root_dir={tmp_path / 'log'}",
            f"rolf.pretrain.data_path={path}", "rolf.pretrain.max_global_step=1"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert str(path) in last and f"'{os.system.__module__}.system'" in last and "crafted to run code" in last, last
    assert not marker.exists()
