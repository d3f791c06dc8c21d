"""Seeded offline-dataset generators. `python -m d4rl.generate maze --out data/maze.gz --num-traj 3000 --seed 0`,
`python -m d4rl.generate kitchen --out data/kitchen.gz --num-episodes 600 --seed 0`.

Maze (spec §5.1, the d4rl fork's `generate_randMaze2d_datasets.py` on the fixed randMaze0S40 layout): reset to a
random free cell (+U(±0.1), velocity N(0, 0.1²)), pick a random free goal cell (+U(±0.1)), follow the waypoint
controller until it reports the goal reached or `max_steps` steps have been recorded; keep trajectories longer
than 20 steps.

Kitchen ("mixed"-style multi-task play, spec §5.1/§5.3): from D4RL's reset state, a random order of 4 distinct
subtasks out of the 7, each solved by its scripted task-space controller (`d4rl/kitchen_scripts.py`) with noise
on waypoints and actions and D4RL's observation noise; an episode is cut after its last successful subtask (a
failed subtask's segment and everything after it is dropped); an episode left with fewer than 101 steps (one
pre-training window, n_skill · skill_horizon + 1) is retried.

Trajectory i is a pure function of (seed, i): its RNG is the i-th child of `SeedSequence(seed)` and a rejected
attempt retries with the same RNG. So the output does not depend on the number of worker processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import time
from typing import Any, Callable, Iterator

import numpy as np
from tqdm import tqdm

from d4rl.maze_controller import GridPlanner, WaypointController
from d4rl.maze_layout import free_cells, load_layout
from d4rl.point_maze import PointMassSim
from rolf.datasets.offline import save_trajectories
from rolf.errors import exit_cli

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


def _maze_task(args: tuple[np.random.SeedSequence, int, float]) -> dict[str, Any]:
    return maze_trajectory(*args)


def _results(fn: Callable[[tuple], dict[str, Any]], tasks: list[tuple], workers: int) -> Iterator[dict[str, Any]]:
    """fn(task) for every task, in order, in `workers` processes (fn must be a module-level function)."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    # "spawn": safe when the parent already runs torch threads; workers only import numpy/mujoco. Workers ignore
    # SIGINT: Ctrl-C reaches the whole process group, and only the parent should answer it (with one line; leaving
    # the `with` terminates the pool), not every worker with a traceback of its own.
    with mp.get_context("spawn").Pool(workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        yield from pool.imap(fn, tasks, chunksize=max(1, min(16, len(tasks) // (8 * workers))))


def _length_stats(trajs: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    lens = np.array([len(t["obs"]) for t in trajs])
    return {"trajectories": len(trajs), "total_steps": int(lens.sum()), "mean_len": float(lens.mean()),
            "min_len": int(lens.min()), "max_len": int(lens.max()), "seconds": seconds,
            "steps_per_s": float(lens.sum() / seconds)}


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
    for r in tqdm(_results(_maze_task, tasks, workers), total=num_traj, disable=not progress,
                  desc="maze trajectories", unit="traj"):
        reached += r.pop("reached")
        attempts += r.pop("attempts")
        trajs.append(r)
    save_trajectories(path, trajs)
    stats = _length_stats(trajs, time.perf_counter() - t0)
    return {**stats, "reached": reached / len(trajs), "attempts": attempts}


def _summary(path: str, s: dict[str, float]) -> str:
    return (f"{path}: {s['trajectories']} trajectories, {s['total_steps']} steps, mean length {s['mean_len']:.1f}, "
            f"goal reached {100 * s['reached']:.1f}%, {s['seconds']:.1f} s, {s['steps_per_s']:.0f} steps/s")


# ---------------------------------------------------------------- kitchen
_KITCHEN: dict[str, Any] = {}  # per-process kitchen simulator
MIN_KITCHEN_LEN = 101  # one SkiMo pre-training window (10 skills x 10 steps + 1)


def kitchen_episode(seed_seq: np.random.SeedSequence, n_subtasks: int = 4, noise_ratio: float = 0.1,
                    waypoint_noise: float = 0.01, action_noise: float = 0.05,
                    max_subtask_steps: int = 120) -> dict[str, Any]:
    """One kept kitchen episode, deterministic in `seed_seq`.

    Returns:
        {"obs": (T, 30) float32, "actions": (T, 9) float32, "dones": (T,) float32 (1 at the end), "order": the
        subtasks completed in order, "tried": {subtask: attempts}, "solved": {subtask: successes}, "attempts":
        episodes tried}.
    """
    from d4rl.kitchen import KitchenSim
    from d4rl.kitchen_scripts import SUBTASK_NAMES, ScriptNoise, run_subtask

    if "sim" not in _KITCHEN or _KITCHEN["noise_ratio"] != noise_ratio:
        _KITCHEN.update(sim=KitchenSim(noise_ratio), noise_ratio=noise_ratio)
    sim = _KITCHEN["sim"]
    noise = ScriptNoise(waypoint=waypoint_noise, action=action_noise)
    rng = np.random.default_rng(seed_seq)
    tried: dict[str, int] = {}
    solved: dict[str, int] = {}
    for attempt in range(1, 1001):
        order = [SUBTASK_NAMES[i] for i in rng.permutation(len(SUBTASK_NAMES))[:n_subtasks]]
        ob = sim.reset(rng)
        obs_parts, act_parts, done_order = [], [], []
        for name in order:
            obs, actions, success = run_subtask(sim, name, rng, ob, noise, max_subtask_steps)
            tried[name] = tried.get(name, 0) + 1
            if not success or sim.unstable():
                break
            solved[name] = solved.get(name, 0) + 1
            obs_parts.append(obs)
            act_parts.append(actions)
            done_order.append(name)
            ob = sim.last_obs  # the observation after the segment's last action
        if sum(map(len, obs_parts)) >= MIN_KITCHEN_LEN:
            obs, actions = np.concatenate(obs_parts), np.concatenate(act_parts)
            dones = np.zeros(len(obs), dtype=np.float32)
            dones[-1] = 1.0
            return {"obs": obs.astype(np.float32), "actions": actions.astype(np.float32), "dones": dones,
                    "order": done_order, "tried": tried, "solved": solved, "attempts": attempt}
    raise RuntimeError(f"the kitchen scripts produced no episode of {MIN_KITCHEN_LEN}+ successful steps in 1000 tries")


def _kitchen_task(args: tuple) -> dict[str, Any]:
    return kitchen_episode(*args)


def generate_kitchen_dataset(path: str, num_episodes: int = 600, seed: int = 0, workers: int | None = None,
                             n_subtasks: int = 4, noise_ratio: float = 0.1, waypoint_noise: float = 0.01,
                             action_noise: float = 0.05, max_subtask_steps: int = 120,
                             progress: bool = True) -> dict[str, Any]:
    """Generates scripted kitchen play in the original container format (30-d obs, 9-d actions, dones).

    Args:
        path: output file; written atomically.
        num_episodes: episodes kept (D4RL kitchen-mixed: ~600 episodes, ~137k steps).
        seed: root seed; the same seed gives the same file for any `workers`.
        workers: processes (default `os.cpu_count()`); 1 runs in this process.
        n_subtasks: distinct subtasks chained per episode, in random order (kitchen-mixed: 4).
        noise_ratio: D4RL's observation noise (× the robot config's amplitudes); 0 = noise-free.
        waypoint_noise: σ (m) of the scripts' waypoint noise.
        action_noise: σ of Gaussian noise on the scripts' actions (clipped to [−1, 1]).
        max_subtask_steps: a subtask not solved within this many steps counts as failed.
        progress: show a tqdm bar.
    Returns:
        Stats: trajectories, total_steps, mean/min/max_len, seconds, steps_per_s, attempts, mean_subtasks (per
        kept episode), full_episodes (fraction with all `n_subtasks` solved), success_<subtask> (scripted
        success rate over all tries), tried_<subtask>.
    """
    if num_episodes < 1 or not 1 <= n_subtasks <= 7:
        raise ValueError(f"need num_episodes >= 1 and 1 <= n_subtasks <= 7 (got {num_episodes}, {n_subtasks})")
    workers = max(1, min(int(workers or os.cpu_count() or 1), num_episodes))
    t0 = time.perf_counter()
    tasks = [(s, n_subtasks, noise_ratio, waypoint_noise, action_noise, max_subtask_steps)
             for s in np.random.SeedSequence(seed).spawn(num_episodes)]
    trajs, tried, solved, attempts, n_done, full = [], {}, {}, 0, 0, 0
    for r in tqdm(_results(_kitchen_task, tasks, workers), total=num_episodes, disable=not progress,
                  desc="kitchen episodes", unit="ep"):
        for name, n in r.pop("tried").items():
            tried[name] = tried.get(name, 0) + n
        for name, n in r.pop("solved").items():
            solved[name] = solved.get(name, 0) + n
        attempts += r.pop("attempts")
        order = r.pop("order")
        n_done += len(order)
        full += len(order) == n_subtasks
        trajs.append(r)
    save_trajectories(path, trajs)
    stats = _length_stats(trajs, time.perf_counter() - t0)
    stats.update(attempts=attempts, mean_subtasks=n_done / len(trajs), full_episodes=full / len(trajs))
    for name in sorted(tried):
        stats[f"success_{name}"] = solved.get(name, 0) / tried[name]
        stats[f"tried_{name}"] = tried[name]
    return stats


def _kitchen_summary(path: str, s: dict[str, Any]) -> str:
    rates = ", ".join(f"{k[len('success_'):]} {100 * v:.0f}%" for k, v in s.items() if k.startswith("success_"))
    return (f"{path}: {s['trajectories']} episodes, {s['total_steps']} steps, mean length {s['mean_len']:.1f}, "
            f"{s['mean_subtasks']:.2f} subtasks per episode ({100 * s['full_episodes']:.0f}% complete), "
            f"{s['seconds']:.1f} s, {s['steps_per_s']:.0f} steps/s\nscripted subtask success: {rates}")


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
    kitchen = sub.add_parser("kitchen", help="scripted multi-task play (4 random subtasks per episode)")
    kitchen.add_argument("--out", default="data/kitchen.gz")
    kitchen.add_argument("--num-episodes", type=int, default=600)
    kitchen.add_argument("--seed", type=int, default=0)
    kitchen.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    kitchen.add_argument("--subtasks", type=int, default=4, help="subtasks per episode")
    kitchen.add_argument("--noise-ratio", type=float, default=0.1, help="observation noise (D4RL: 0.1)")
    kitchen.add_argument("--waypoint-noise", type=float, default=0.01, help="σ (m) of waypoint noise")
    kitchen.add_argument("--action-noise", type=float, default=0.05, help="σ of Gaussian action noise")
    kitchen.add_argument("--max-subtask-steps", type=int, default=120)
    kitchen.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.env == "maze":
        stats = generate_maze_dataset(args.out, args.num_traj, args.seed, args.workers, args.max_steps,
                                      args.action_noise, progress=not args.no_progress)
        print(_summary(args.out, stats))
    elif args.env == "kitchen":
        stats = generate_kitchen_dataset(args.out, args.num_episodes, args.seed, args.workers, args.subtasks,
                                         args.noise_ratio, args.waypoint_noise, args.action_noise,
                                         args.max_subtask_steps, progress=not args.no_progress)
        print(_kitchen_summary(args.out, stats))


if __name__ == "__main__":
    exit_cli(main)
