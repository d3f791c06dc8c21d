"""bench/ab.py: an alternating A/B run of two revisions, end to end on the smallest setting."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True,
                          check=True).stdout


def test_ab_times_both_revisions_and_removes_its_worktree():
    before = _worktrees()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "ab.py"), "--base", "HEAD", "--rounds", "1",
                          "--reps", "1", "--envs", "maze", "--figures", "rl_update", "--threads", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"maze_rl_update base ([\d.e-]+) head ([\d.e-]+) s \(fastest [\d.e-]+ / [\d.e-]+\) "
                     r"base/head ([\d.]+)", line)
    assert m, line
    assert all(float(x) > 0 for x in m.groups())
    assert _worktrees() == before


def test_ab_rejects_unknown_figures_and_a_missing_base():
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "bench" / "ab.py"), *a], capture_output=True,  # noqa: E731
                                    text=True, cwd=ROOT, check=False)
    bad = run("--base", "HEAD", "--figures", "rl_update,fly")
    assert bad.returncode != 0 and "unknown ['fly']" in bad.stderr
    missing = run()
    assert missing.returncode != 0 and "--base" in missing.stderr
