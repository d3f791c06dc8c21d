"""Seeded offline-dataset generators. `python -m d4rl.generate maze --out data/maze.gz --num-traj 3000 --seed 0`.

Maze (spec §5.1, the d4rl fork's `generate_randMaze2d_datasets.py` on the fixed randMaze0S40 layout): reset to a
random free cell (+U(±0.1), velocity N(0, 0.1²)), pick a random free goal cell (+U(±0.1)), follow the waypoint
controller until it reports the goal reached or `max_steps` steps have been recorded; keep trajectories longer
than 20 steps. Trajectory i is a pure function of (seed, i): its RNG is the i-th child of `SeedSequence(seed)`
and a rejected attempt (unreachable goal, too short) retries with the same RNG. So the output does not depend
on the number of worker processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from d4rl.maze_controller import GridPlanner, WaypointController
from d4rl.maze_layout import free_cells, load_layout
from d4rl.point_maze import PointMassSim
from rolf.datasets.offline import save_trajectories

MIN_TRAJ_LEN = 20  # keep trajectories with more steps than this (d4rl: len(actions) > min_traj_len)

_WORKER: dict[str, Any] = {}  # per-process simulator, planner and controller


def _worker_state() -> dict[str, Any]:
    if not _WORKER:
        planner = GridPlanner(load_layout())
        _WORKER.update(sim=PointMassSim(), controller=WaypointController(planner), cells=free_cells())
    return _WORKER


def _sample_task(rng: np.random.Generator, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d4rl `reset_model` + `set_target`: start qpos/qvel and goal, each (2,)."""
    qpos = cells[rng.integers(len(cells))] + rng.uniform(-0.1, 0.1, size=2)
    qvel = rng.normal(0.0, 0.1, size=2)
    goal = cells[rng.integers(len(cells))] + rng.uniform(-0.1, 0.1, size=2)
    return qpos, qvel, goal


def _run_controller(sim: PointMassSim, ctrl: WaypointController, rng: np.random.Generator, max_steps: int,
                    action_noise: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rolls the controller out from the simulator's current state.

    Returns:
        obs (T, 4) float32, actions (T, 2) float32 (obs[t] is the state action[t] was taken in), reached goal.
    """
    obs = np.empty((max_steps, 4))
    actions = np.empty((max_steps, 2))
    qpos, qvel, act = sim.data.qpos, sim.data.qvel, np.empty(2)
    reached, t = False, 0
    for t in range(max_steps):
        x, y, vx, vy = float(qpos[0]), float(qpos[1]), float(qvel[0]), float(qvel[1])
        act[0], act[1], reached = ctrl.act(x, y, vx, vy)
        if action_noise > 0.0:
            act += rng.normal(0.0, action_noise, size=2)
            np.clip(act, -1.0, 1.0, out=act)
        obs[t] = x, y, vx, vy
        actions[t] = act
        if reached:
            break
        sim.advance(act)
    n = t + 1
    return obs[:n].astype(np.float32), actions[:n].astype(np.float32), reached


def maze_trajectory(seed_seq: np.random.SeedSequence, max_steps: int = 1600,
                    action_noise: float = 0.0) -> dict[str, Any]:
    """One kept trajectory, deterministic in `seed_seq`.

    Returns:
        {"obs": (T, 4) float32, "actions": (T, 2) float32, "dones": (T,) float32, "reached": bool,
        "attempts": int}; T > 20.
    """
    state = _worker_state()
    sim, ctrl, cells = state["sim"], state["controller"], state["cells"]
    rng = np.random.default_rng(seed_seq)
    for attempt in range(1, 10_001):
        qpos, qvel, goal = _sample_task(rng, cells)
        sim.set_state(qpos, qvel)
        if not ctrl.reset(qpos, goal, rng):
            continue  # goal cell not reachable from the start cell
        obs, actions, reached = _run_controller(sim, ctrl, rng, max_steps, action_noise)
        if len(obs) > MIN_TRAJ_LEN:
            dones = np.zeros(len(obs), dtype=np.float32)
            dones[-1] = 1.0
            return {"obs": obs, "actions": actions, "dones": dones, "reached": reached, "attempts": attempt}
    raise RuntimeError(f"no trajectory longer than {MIN_TRAJ_LEN} steps in 10000 attempts (max_steps={max_steps})")


def _task(args: tuple[np.random.SeedSequence, int, float]) -> dict[str, Any]:
    return maze_trajectory(*args)


def _results(tasks: list[tuple], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        yield from map(_task, tasks)
        return
    # "spawn": safe when the parent already runs torch threads; workers only import numpy/mujoco.
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_task, tasks, chunksize=max(1, min(16, len(tasks) // (8 * workers))))


def generate_maze_dataset(path: str, num_traj: int = 3000, seed: int = 0, workers: int | None = None,
                          max_steps: int = 1600, action_noise: float = 0.0, progress: bool = True) -> dict[str, float]:
    """Generates the maze dataset in the original container format (gzip pickle list of obs/actions/dones dicts).

    Args:
        path: output file; written atomically.
        num_traj: number of trajectories kept.
        seed: root seed; the same seed gives the same file for any `workers`.
        workers: processes (default `os.cpu_count()`); 1 runs in this process.
        max_steps: at most this many steps per trajectory (the fork: 1600).
        action_noise: σ of Gaussian noise added to the controller's actions (the fork's `--noisy`: 0.5).
        progress: show a tqdm bar.
    Returns:
        Stats: trajectories, total_steps, mean_len, min_len, max_len, reached (fraction), attempts, seconds,
        steps_per_s.
    """
    if num_traj < 1 or max_steps <= MIN_TRAJ_LEN:
        raise ValueError(f"need num_traj >= 1 and max_steps > {MIN_TRAJ_LEN} (got {num_traj}, {max_steps})")
    workers = max(1, min(int(workers or os.cpu_count() or 1), num_traj))
    t0 = time.perf_counter()
    tasks = [(s, max_steps, action_noise) for s in np.random.SeedSequence(seed).spawn(num_traj)]
    trajs, reached, attempts = [], 0, 0
    for r in tqdm(_results(tasks, workers), total=num_traj, disable=not progress, desc="maze trajectories",
                  unit="traj"):
        reached += r.pop("reached")
        attempts += r.pop("attempts")
        trajs.append(r)
    save_trajectories(path, trajs)
    seconds = time.perf_counter() - t0
    lens = np.array([len(t["obs"]) for t in trajs])
    return {"trajectories": len(trajs), "total_steps": int(lens.sum()), "mean_len": float(lens.mean()),
            "min_len": int(lens.min()), "max_len": int(lens.max()), "reached": reached / len(trajs),
            "attempts": attempts, "seconds": seconds, "steps_per_s": float(lens.sum() / seconds)}


def _summary(path: str, s: dict[str, float]) -> str:
    return (f"{path}: {s['trajectories']} trajectories, {s['total_steps']} steps, mean length {s['mean_len']:.1f}, "
            f"goal reached {100 * s['reached']:.1f}%, {s['seconds']:.1f} s, {s['steps_per_s']:.0f} steps/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m d4rl.generate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="env", required=True)
    maze = sub.add_parser("maze", help="waypoint-controller trajectories in the randMaze0S40 layout")
    maze.add_argument("--out", default="data/maze.gz")
    maze.add_argument("--num-traj", type=int, default=3000)
    maze.add_argument("--seed", type=int, default=0)
    maze.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    maze.add_argument("--max-steps", type=int, default=1600)
    maze.add_argument("--action-noise", type=float, default=0.0, help="σ of Gaussian action noise (fork: 0.5)")
    maze.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.env == "maze":
        stats = generate_maze_dataset(args.out, args.num_traj, args.seed, args.workers, args.max_steps,
                                      args.action_noise, progress=not args.no_progress)
        print(_summary(args.out, stats))


if __name__ == "__main__":
    main()
