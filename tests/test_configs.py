import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from conftest import compose_cfg
from skimo_agent import SkiMoConfig

SEMANTIC = ["n_skill", "skill_horizon", "skill_dim", "use_cem", "sac", "joint_training", "phase", "use_prior",
            "prior_reg_critic", "lstm", "state_dim", "num_units", "num_layers"]


def test_paper_scale_maze_defaults():
    r = compose_cfg("skimo_maze").rolf
    assert (r.name, r.phase, r.n_skill, r.skill_horizon, r.skill_dim, r.state_dim, r.num_units) == ("skimo", "pretrain", 10, 10, 10, 128, 128)
    assert (r.pretrain.batch_size, r.pretrain.max_global_step, r.pretrain.train_iter, r.pretrain.data_path) == (512, 200000, 5, "data/maze.gz")
    assert (r.warm_up_step, r.batch_size, r.target_divergence, r.min_std, r.std_step, r.horizon_step) == (50000, 128, 3.0, 0.01, 1e6, 1e6)
    assert r.scalars.ll_actor == 2.0 and r.use_prior and not r.lstm and r.log_std and r.fixed_alpha is None
    assert list(r.decoder.hidden_dims) == [128, 128] and r.encoder.embed_dim == 128
    c = SkiMoConfig.from_rolf(r)
    assert c.max_divergence == 100 and c.rho == 0.5 and c.lambda_encoder_kl == 1e-4


def test_readme_overrides_compose():
    sac = compose_cfg("skimo_maze", ["rolf.phase=rl", "rolf.use_cem=false", "rolf.n_skill=1", "rolf.prior_reg_critic=true",
                                     "rolf.sac=true", "rolf.pretrain_ckpt_path=x.pt", "gpu=0", "wandb=true", "seed=4",
                                     "run_prefix=abc", "rolf.joint_training=false"])
    assert (sac.rolf.n_skill, sac.rolf.use_cem, sac.rolf.sac, sac.rolf.prior_reg_critic, sac.gpu, sac.seed) == (1, False, True, True, 0, 4)


def test_typos_fail():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_cfg("skimo_maze", ["rolf.sacc=true"])
    with pytest.raises(ConfigCompositionException):
        compose_cfg("skimo_maze", ["+preset=nope"])


def test_cpu_quick_preset_changes_sizes_only():
    base, quick = compose_cfg("skimo_maze").rolf, compose_cfg("skimo_maze", ["+preset=cpu_quick"]).rolf
    for key in SEMANTIC:
        assert base[key] == quick[key], key
    assert quick.pretrain.max_global_step == 1000  # -> maze_ckpt_00000001000.pt, the README's RL command
    sac = compose_cfg("skimo_maze", ["+preset=cpu_quick", "rolf.n_skill=1", "rolf.sac=true"]).rolf
    assert sac.n_skill == 1 and sac.sac


def test_interpolated_sizes_follow_num_units():
    r = compose_cfg("skimo_maze", ["rolf.num_units=64"]).rolf
    assert r.encoder.embed_dim == 64 and list(r.decoder.hidden_dims) == [64, 64]


# Every launcher config of README's command table, with the env it runs on and its algorithm.
LAUNCH = [("skimo_maze", "maze", "skimo"), ("skimo_kitchen", "kitchen", "skimo"), ("skimo_calvin", "calvin", "skimo")]
LAUNCH += [(f"{name}_{env}", env, name) for name in ("spirl_tdmpc", "spirl_dreamer") for env in ("maze", "kitchen", "calvin")]
LAUNCH += [(name, env, algo) for name, algo in (("tdmpc_config", "tdmpc"), ("dreamer_config", "dreamer"),
                                                  ("spirl_config", "spirl")) for env in ("maze", "kitchen", "calvin")]


@pytest.mark.parametrize("name, env, algo", LAUNCH)
def test_every_launcher_config_composes_and_names_a_registered_algorithm(name, env, algo):
    import run

    overrides = [] if name.endswith(("_maze", "_kitchen", "_calvin")) else [f"env={env}"]
    cfg = compose_cfg(name, overrides + ["env.task=misaligned"] if env == "kitchen" else overrides)
    assert (cfg.env.id, cfg.rolf.name) == (env, algo)
    assert run.get_trainer_class(algo) is not None  # the launcher's table knows it
