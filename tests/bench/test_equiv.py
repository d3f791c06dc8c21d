"""bench/equiv.py: the same revision twice gives the same logged values; differences are found and named."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.equiv import max_relative_difference

ROOT = Path(__file__).resolve().parents[2]


def test_max_relative_difference_names_the_worst_value_and_rejects_different_logs():
    assert max_relative_difference({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0}) == (0.0, "a")
    rel, worst = max_relative_difference({"a": 1.0, "b": 2.0}, {"a": 1.0 + 1e-6, "b": 2.2})
    assert worst == "b" and rel == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"only base \['b'\], only head \['c'\]"):
        max_relative_difference({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})


def test_the_same_revision_twice_gives_the_same_values():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "equiv.py"), "--base", "HEAD", "--steps", "1",
                          "--rl-overrides"], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["maze pre-training [defaults]", "kitchen pre-training [defaults]"]
    # bit-identical where the BLAS is deterministic; a float-rounding allowance in case memory alignment changes MKL's
    # kernel between the two processes
    assert all(float(line.split("max relative difference ")[1].split()[0]) < 1e-6 for line in lines), lines
