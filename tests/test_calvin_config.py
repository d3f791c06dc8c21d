"""`skimo_calvin`: spec §4.1 CALVIN values, and the whole pipeline on our CALVIN table — generated play data ->
pre-training (n_skill 1) -> RL from that checkpoint — through `run.main` at tiny sizes."""

from __future__ import annotations

import json

import numpy as np

import run
from calvin.generate import generate_calvin_dataset
from conftest import TINY, compose_cfg
from skimo_agent import SkiMoConfig

# spec §4.1, CALVIN column: the values that differ from the kitchen/maze configs or from the defaults
CALVIN = {"n_skill": 1, "skill_horizon": 10, "state_dim": 256, "num_units": 256, "num_layers": 4, "log_std": True,
          "lstm": True, "use_prior": True, "prior_reg_critic": False, "fixed_alpha": 0.1, "target_divergence": 1.0,
          "warm_up_step": 5000, "batch_size": 256, "reward_scale": 0.01, "min_std": 0.01, "std_step": 25_000,
          "horizon_step": 25_000, "train_every": 500, "train_iter": 10}


def test_paper_scale_calvin_values():
    cfg = compose_cfg("skimo_calvin")
    r = cfg.rolf
    assert {k: r[k] for k in CALVIN} == CALVIN
    assert r.scalars.ll_actor == 2.0 and r.encoder.embed_dim == 256 and list(r.decoder.hidden_dims) == [256, 256]
    assert (r.pretrain.batch_size, r.pretrain.data_path) == (512, "data/calvin.gz")
    assert dict(cfg.env) == {"id": "calvin", "max_episode_steps": 360, "reward_norm": 100.0, "full_obs": False,
                             "add_blocks": False}
    assert SkiMoConfig.from_rolf(r).n_skill == 1


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_generated_play_pretrain_then_rl(tmp_path):
    data = tmp_path / "calvin.gz"
    generate_calvin_dataset(str(data), num_chunks=4, seed=0, workers=1, chunk_len=60, chunks_per_stream=4,
                            progress=False)
    common = TINY + [f"log_root_dir={tmp_path}", "run_prefix=t", "env.max_episode_steps=60"]
    run.main(compose_cfg("skimo_calvin", common + [f"rolf.pretrain.data_path={data}", "rolf.pretrain.max_global_step=10",
                                                   "rolf.pretrain.train_iter=1", "rolf.pretrain.log_every=5",
                                                   "rolf.pretrain.evaluate_every=10", "rolf.pretrain.ckpt_every=10"]))
    ckpt = tmp_path / "calvin.skimo.pretrain.t.0" / "ckpt" / "calvin_ckpt_00000000010.pt"
    assert ckpt.is_file()
    rows = _rows(ckpt.parents[1])
    losses = [r["pretrain/ll_actor_loss"] for r in rows if "pretrain/ll_actor_loss" in r]
    assert losses and np.isfinite(losses).all()
    run.main(compose_cfg("skimo_calvin", common + ["rolf.phase=rl", f"rolf.pretrain_ckpt_path={ckpt}",
                                                   "rolf.max_global_step=240", "rolf.warm_up_step=120",
                                                   "rolf.train_every=60", "rolf.train_iter=2", "rolf.log_every=60",
                                                   "rolf.evaluate_every=240", "rolf.ckpt_every=240"]))
    rl_dir = tmp_path / "calvin.skimo.rl.t.0"
    rows = _rows(rl_dir)
    assert any("train_rl/model_loss" in r for r in rows)
    test_eps = [r for r in rows if "test_ep/len" in r]
    assert test_eps and test_eps[-1]["test_ep/len"] == 60 and "test_ep/open_drawer" in test_eps[-1]
    assert (rl_dir / "ckpt" / "calvin_ckpt_00000000240.pt").is_file()
