"""`skimo_kitchen`: spec §4.1 kitchen values, the mis-aligned task, and the original kitchen checkpoint on an agent
built from this config (it reproduces the original's reference outputs)."""

from __future__ import annotations

import json

import torch

import run
import test_original_checkpoint as original_test
from conftest import OriginalFixtures, compose_cfg
from envs import env_kwargs, get_env_spec
from rolf.utils.checkpoint import load_checkpoint
from skimo_agent import SkiMoAgent, SkiMoConfig, build_agent

# spec §4.1, kitchen column (every key; defaults included so a change of algo/skimo.yaml shows up here too)
KITCHEN = {
    "n_skill": 10, "skill_horizon": 10, "skill_dim": 10, "state_dim": 256, "num_units": 128, "num_layers": 4,
    "dense_act": "elu", "log_std": True, "lstm": True, "lstm_units": 128, "joint_training": True, "freeze_model": False,
    "sac": False, "sample_last_more": True, "use_prior": True, "prior_reg_critic": False, "fixed_alpha": 0.5,
    "alpha_init": 1.0, "alpha_lr": 3e-4, "target_divergence": 5.0, "max_global_step": 2_000_000, "warm_up_step": 5000,
    "train_every": 500, "train_iter": 10, "log_every": 500, "evaluate_every": 5000, "ckpt_every": 50_000,
    "batch_size": 256, "rl_discount": 0.99, "buffer_size": 1_000_000, "reward_scale": 1.0, "target_update_freq": 2,
    "target_update_tau": 0.99, "joint_lr": 1e-3, "model_lr": 1e-3, "actor_lr": 1e-3, "grad_clip": 100,
    "weight_decay": 0.0, "max_divergence": 100.0, "use_cem": True, "cem_iter": 6, "num_elites": 64,
    "num_sample_traj": 512, "num_policy_traj": 25, "cem_momentum": 0.1, "cem_temperature": 0.5, "max_std": 0.5,
    "min_std": 0.01, "std_step": 25_000, "horizon_step": 25_000, "precision": 32, "ob_norm": False,
}
PRETRAIN = {"max_global_step": 200_000, "train_iter": 5, "batch_size": 512, "log_every": 100, "evaluate_every": 500,
            "ckpt_every": 5000, "data_path": "data/kitchen.gz"}
SCALARS = {"hl_actor": 1.0, "hl_model": 1.0, "consistency": 2.0, "hl_reward": 0.5, "hl_value": 0.1, "hl_prior": 1.0,
           "ll_actor": 2.0, "encoder_kl": 1e-4, "rho": 0.5}


def kitchen_agent(overrides: list[str] | None = None, phase: str = "rl", seed: int = 0) -> SkiMoAgent:
    """A SkiMo agent built from `skimo_kitchen` and the kitchen env spec (ob_dim 30, ac_dim 9)."""
    torch.manual_seed(seed)
    return build_agent(compose_cfg("skimo_kitchen", overrides), phase, seed=seed)


def test_paper_scale_kitchen_values():
    cfg = compose_cfg("skimo_kitchen")
    r = cfg.rolf
    assert {k: r[k] for k in KITCHEN} == KITCHEN
    assert {k: r.pretrain[k] for k in PRETRAIN} == PRETRAIN
    assert {k: r.scalars[k] for k in SCALARS} == SCALARS
    assert dict(r.pretrain.split) == {"train": 0.99, "val": 0.01, "test": 0.0}
    assert r.encoder.embed_dim == 128 and list(r.decoder.hidden_dims) == [128, 128]
    assert dict(cfg.env) == {"id": "kitchen", "max_episode_steps": 280, "task": "base", "with_goal": False,
                             "noise_ratio": 0.1, "goal_task": "base"}
    c = SkiMoConfig.from_rolf(r)
    assert c.state_dim == 256 and c.lstm and c.log_std


def test_misaligned_task_composes_and_builds_its_env():
    cfg = compose_cfg("skimo_kitchen", ["env.task=misaligned", "rolf.phase=rl", "rolf.pretrain_ckpt_path=x.pt"])
    assert cfg.env.task == "misaligned"
    env = get_env_spec(cfg.env.id).make(seed=0, **env_kwargs(cfg.env))
    assert env.subtasks == ("microwave", "light switch", "slide cabinet", "hinge cabinet")
    assert env.observation_space.shape == (30,) and env.max_episode_steps == 280


def test_agent_builds_for_both_phases():
    for phase in ("pretrain", "rl"):
        agent = kitchen_agent(phase=phase)
        assert agent.meta_agent.model.encode(torch.zeros(2, 30)).shape == (2, 256)


def test_original_kitchen_checkpoint_reproduces_reference_outputs(monkeypatch, original: OriginalFixtures):
    """The original's kitchen checkpoint loads into the agent built from `skimo_kitchen` (at the fixture set's
    sizes); the reference check of tests/test_original_checkpoint.py runs on that agent instead of its own
    override-built one."""
    def load(fixtures: OriginalFixtures, env: str):
        assert env == "kitchen"
        agent = kitchen_agent(fixtures.sizes["kitchen"])
        ckpt = load_checkpoint(fixtures.ckpt("kitchen"))
        agent.load_pretrained(ckpt["agent"])
        for module in (agent.meta_agent, agent.skill_agent, agent.skill_prior):
            module.eval()
        return agent, ckpt, fixtures.reference("kitchen")

    monkeypatch.setattr(original_test, "_load", load)
    original_test.test_original_checkpoint_reproduces_reference_outputs(original, "kitchen")


def test_rl_on_the_misaligned_kitchen_from_the_original_checkpoint(tmp_path, original: OriginalFixtures):
    """A short RL run (CEM planning, training, evaluation) with `env.task=misaligned` from the original checkpoint
    (episodes of 12 skills: the high-level buffer samples sequences of n_skill = 10)."""
    overrides = [f"log_root_dir={tmp_path}", "run_prefix=k", "rolf.phase=rl", f"rolf.pretrain_ckpt_path={original.ckpt('kitchen')}",
                 *original.sizes["kitchen"],
                 "env.task=misaligned", "env.max_episode_steps=120", "rolf.max_global_step=480", "rolf.warm_up_step=240",
                 "rolf.train_every=120", "rolf.train_iter=2", "rolf.batch_size=8", "rolf.log_every=120",
                 "rolf.evaluate_every=480", "rolf.ckpt_every=480", "rolf.num_sample_traj=16", "rolf.num_policy_traj=4",
                 "rolf.num_elites=4", "rolf.cem_iter=2"]
    run.main(compose_cfg("skimo_kitchen", overrides))
    run_dir = tmp_path / "kitchen.skimo.rl.k.0"
    assert (run_dir / "ckpt" / "kitchen_ckpt_00000000480.pt").is_file()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("train_rl/model_loss" in r for r in rows) and any("test_ep/len" in r for r in rows)
    assert any("train_ep/microwave" in r for r in rows)  # per-subtask flags reach the episode metrics
