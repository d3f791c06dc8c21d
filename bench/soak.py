"""Soak: the maze RL loop for an hour, killed with SIGKILL every ~5 minutes and started again with the same command.

    python bench/soak.py                       # 60 min, a kill every 5 +- 1 min, run directory under ~/skimo_soak
    python bench/soak.py --minutes 10 --kill-every 2 --out results/soak

Reports, one line each (and `<out>/soak.json`):
- every start after the first resumed from the newest checkpoint on disk at that moment (its "resumed from" line);
- metrics.jsonl after the last start holds no row twice and none lost: rows of each kind at non-decreasing steps,
  no (step, kind) twice, and consecutive `train_rl` rows never further apart than one log interval (+ one chunk);
- the process's resident memory (VmRSS, sampled every few seconds) once the replay buffer was full: its spread
  and its trend (MB per hour, least squares over the samples of every start).

The run: SkiMo RL on the maze with `+preset=cpu_quick` from a short pre-training (made first unless
--pretrain-ckpt is given), a replay buffer of `--buffer-episodes` episodes (so that it fills within the soak: it is
full once buffer_episodes x 2,000 env steps are done), checkpoints every `--ckpt-minutes` of wall-clock time, a
budget no soak reaches. The last start is stopped with SIGTERM (the graceful path) instead of SIGKILL. The run
directory lives outside the checkout (`--root`, default ~/skimo_soak) and is made afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_EPISODE_STEPS = 2000  # the maze's time limit (config/env/maze.yaml)
LOG_EVERY, TRAIN_EVERY, SKILL_HORIZON = 2500, 500, 10  # cpu_quick's log interval, the chunk, a skill


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def newest_step(ckpt_dir: Path) -> int | None:
    from rolf.utils.checkpoint import latest_checkpoint, parse_step

    p = latest_checkpoint(ckpt_dir)
    return None if p is None else parse_step(p)


def last_row_step(metrics: Path) -> int:
    step = 0
    if metrics.is_file():
        for line in metrics.read_text().splitlines()[-50:]:
            try:
                step = max(step, int(json.loads(line)["step"]))
            except (ValueError, KeyError):
                pass
    return step


def pretrain(root: Path, data: str, steps: int, threads: int) -> Path:
    cmd = [sys.executable, "run.py", "--config-name", "skimo_maze", "+preset=cpu_quick", f"log_root_dir={root}",
           f"rolf.pretrain.data_path={data}", f"rolf.pretrain.max_global_step={steps}", "rolf.pretrain.evaluate_every=0",
           f"num_threads={threads}", "progress_bar=false", "run_prefix=soak"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    from rolf.utils.checkpoint import latest_checkpoint

    return latest_checkpoint(root / "maze.skimo.pretrain.soak.0" / "ckpt")


def check_rows(metrics: Path) -> dict:
    """Duplicated and lost rows of the final metrics.jsonl."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    seen, duplicates, backwards, last = set(), 0, 0, {}
    for r in rows:
        kind = next(k for k in r if k != "step").split("/")[0]
        key = (r["step"], kind, tuple(sorted(r)))
        duplicates += key in seen
        seen.add(key)
        backwards += r["step"] < last.get(kind, -1)
        last[kind] = r["step"]
    train = [r["step"] for r in rows if "train_rl/model_loss" in r]
    gaps = np.diff(train) if len(train) > 1 else np.zeros(0)
    allowed = LOG_EVERY + TRAIN_EVERY + SKILL_HORIZON
    return {"rows": len(rows), "train_rl_rows": len(train), "duplicated_rows": int(duplicates),
            "rows_out_of_order": int(backwards), "largest_train_rl_gap": int(gaps.max()) if len(gaps) else 0,
            "train_rl_gaps_over_one_interval": int((gaps > allowed).sum()), "allowed_gap": allowed,
            "last_step": train[-1] if train else 0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--kill-every", type=float, default=5.0, help="minutes between kills (+- 20 %%, seeded)")
    p.add_argument("--ckpt-minutes", type=float, default=1.0)
    p.add_argument("--buffer-episodes", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--pretrain-ckpt", default=None)
    p.add_argument("--data", default="data/maze.gz")
    p.add_argument("--root", default=str(Path.home() / "skimo_soak"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    root, out = Path(a.root), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (ROOT / a.data).is_file() and not Path(a.data).is_file():
        subprocess.run([sys.executable, "-m", "d4rl.generate", "maze", "--out", a.data, "--workers", "2"], cwd=ROOT,
                       check=True)
    rl_dir = root / "maze.skimo.rl.soak.0"
    shutil.rmtree(rl_dir, ignore_errors=True)
    ckpt = Path(a.pretrain_ckpt) if a.pretrain_ckpt else pretrain(root, a.data, a.pretrain_steps, a.threads)
    cmd = [sys.executable, "run.py", "--config-name", "skimo_maze", "+preset=cpu_quick", "rolf.phase=rl",
           f"rolf.pretrain_ckpt_path={ckpt}", f"log_root_dir={root}", "run_prefix=soak", "rolf.max_global_step=100000000",
           f"rolf.buffer_size={a.buffer_episodes}", f"ckpt_every_minutes={a.ckpt_minutes}", f"num_threads={a.threads}",
           "progress_bar=false"]
    full_step = a.buffer_episodes * MAX_EPISODE_STEPS + 10_000  # + the warm-up, which is stored too
    rng = np.random.default_rng(a.seed)
    t_start = time.monotonic()
    deadline = t_start + 60 * a.minutes
    starts, samples = [], []
    while time.monotonic() < deadline:
        expected = newest_step(rl_dir / "ckpt")
        log_path = out / f"start_{len(starts):02d}.log"
        with open(log_path, "w") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        t0 = time.monotonic()
        stop_at = min(t0 + 60 * a.kill_every * rng.uniform(0.8, 1.2), deadline)
        last = stop_at >= deadline
        while time.monotonic() < stop_at and proc.poll() is None:
            time.sleep(5.0)
            mb = rss_mb(proc.pid)
            if mb is not None:
                samples.append({"t": time.monotonic() - t_start, "start": len(starts), "rss_mb": mb,
                                "step": last_row_step(rl_dir / "metrics.jsonl")})
        ended_early = proc.poll() is not None
        sig = signal.SIGTERM if last else signal.SIGKILL
        if not ended_early:
            os.killpg(proc.pid, sig)
        code = proc.wait(timeout=600)
        text = log_path.read_text()
        m = re.search(r"resumed from \S+ at step ([\d,]+)", text)
        resumed = int(m.group(1).replace(",", "")) if m else None
        starts.append({"start": len(starts), "expected_resume_step": expected, "resumed_step": resumed,
                       "continued": resumed == expected, "seconds": round(time.monotonic() - t0, 1),
                       "stopped_by": "exited" if ended_early else sig.name, "exit_code": code,
                       "newest_ckpt_after": newest_step(rl_dir / "ckpt"),
                       "last_line": text.strip().splitlines()[-1] if text.strip() else ""})
        print(f"start {starts[-1]['start']}: resumed from {resumed} (newest checkpoint {expected}), ran "
              f"{starts[-1]['seconds']:.0f} s, stopped by {starts[-1]['stopped_by']}, newest checkpoint now "
              f"{starts[-1]['newest_ckpt_after']}", flush=True)
        if ended_early and not last:
            print(text[-3000:])
            break

    rows = check_rows(rl_dir / "metrics.jsonl")
    full = [s for s in samples if s["step"] >= full_step]
    memory = {"buffer_full_from_step": full_step, "samples": len(samples), "samples_buffer_full": len(full)}
    if len(full) >= 2:
        rss = np.array([s["rss_mb"] for s in full])
        t = np.array([s["t"] for s in full]) / 3600.0
        memory.update({"rss_min_mb": float(rss.min()), "rss_median_mb": float(np.median(rss)),
                       "rss_max_mb": float(rss.max()),
                       "rss_trend_mb_per_hour": float(np.polyfit(t, rss, 1)[0]) if np.ptp(t) > 0 else 0.0,
                       "per_start_median_mb": {str(k): float(np.median([s["rss_mb"] for s in full if s["start"] == k]))
                                               for k in sorted({s["start"] for s in full})}})
    host = {"cpu": platform.processor() or platform.machine(), "threads": a.threads,
            "flags": sorted(set(re.findall(r"amx_bf16|avx512_bf16", Path("/proc/cpuinfo").read_text())))}
    result = {"minutes": a.minutes, "kill_every_minutes": a.kill_every, "ckpt_minutes": a.ckpt_minutes,
              "command": " ".join(cmd), "starts": starts, "rows": rows, "memory": memory, "host": host,
              "rss_samples": samples}
    (out / "soak.json").write_text(json.dumps(result, indent=1))
    resumes = starts[1:]
    print(f"starts {len(starts)}; resumes that continued from the newest checkpoint: "
          f"{sum(s['continued'] for s in resumes)}/{len(resumes)}")
    print(f"metrics rows {rows['rows']} (train_rl {rows['train_rl_rows']}, last env step {rows['last_step']:,}): "
          f"duplicated {rows['duplicated_rows']}, out of order {rows['rows_out_of_order']}, train_rl gaps over one "
          f"interval {rows['train_rl_gaps_over_one_interval']} (largest {rows['largest_train_rl_gap']})")
    if "rss_median_mb" in memory:
        print(f"RSS with the buffer full ({memory['samples_buffer_full']} samples): min {memory['rss_min_mb']:.0f} MB, "
              f"median {memory['rss_median_mb']:.0f} MB, max {memory['rss_max_mb']:.0f} MB, trend "
              f"{memory['rss_trend_mb_per_hour']:+.1f} MB/h")
    final = starts[-1]
    graceful = final["stopped_by"] != "SIGTERM" or (final["exit_code"] == 128 + signal.SIGTERM
                                                    and final["last_line"].startswith("interrupted (SIGTERM)"))
    print(f"last start stopped by {final['stopped_by']}: exit code {final['exit_code']}, last line: {final['last_line']}")
    ok = all(s["continued"] for s in resumes) and rows["duplicated_rows"] == 0 and rows["rows_out_of_order"] == 0 \
        and rows["train_rl_gaps_over_one_interval"] == 0 and graceful
    print("soak:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
