"""Original SkiMo checkpoints load onto our modules and reproduce the original's outputs (issue: original ckpts).
Every test runs on the vendored tiny fixtures and, with $SKIMO_ORIGINAL_FIXTURES set, on the full-size ones."""

import re

import numpy as np
import pytest
import torch

from conftest import OriginalFixtures, make_skimo_agent, maze_preprocess
from rolf.utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

# `skimo_maze` plus what makes it the kitchen model (the sizes come from the fixture set)
CASES = {
    "maze": dict(overrides=[], ob_dim=4, ac_dim=2, preprocess=maze_preprocess),
    "kitchen": dict(overrides=["rolf.lstm=true", "rolf.log_std=true"], ob_dim=30, ac_dim=9, preprocess=lambda x: x),
}


def _agent(original: OriginalFixtures, env: str, phase: str = "rl"):
    case = CASES[env]
    return make_skimo_agent(original.sizes[env] + case["overrides"], phase=phase, ob_dim=case["ob_dim"],
                            ac_dim=case["ac_dim"], preprocess=case["preprocess"])


def _load(original: OriginalFixtures, env: str):
    agent = _agent(original, env)
    ckpt = load_checkpoint(original.ckpt(env))
    agent.load_pretrained(ckpt["agent"], source=env)
    for mod in (agent.meta_agent, agent.skill_agent, agent.skill_prior):
        mod.eval()
    return agent, ckpt, original.reference(env)


@pytest.mark.parametrize("env", ["maze", "kitchen"])
def test_original_checkpoint_reproduces_reference_outputs(original, env):
    agent, _, ref = _load(original, env)
    m, s = agent.meta_agent, agent.skill_agent
    t = lambda k: torch.as_tensor(ref[k])  # noqa: E731
    with torch.no_grad():
        ob = agent.preprocess(t("raw_ob"))
        h = m.model.encode(ob)
        h_next, reward = m.model.imagine_step(t("latent"), t("skill"))
        q1, q2 = m.model.q(t("latent"), t("skill"))
        prior = m.actor(t("latent"))
        dec_mean, _ = m.decoder(t("latent"))
        action = s.act(s.encoder(ob), t("skill"))
        seq_ob = agent.preprocess(t("seq_ob"))
        q = s.encode_skills(s.encoder(seq_ob), t("seq_ac"))
    got = {"latent": h, "latent_next": h_next, "reward": reward, "q1": q1, "q2": q2, "prior_loc": prior.loc,
           "prior_scale": prior.scale, "decoder_mean": dec_mean, "skill_action": action, "skill_enc_loc": q.loc,
           "skill_enc_scale": q.scale}
    for key, value in got.items():
        np.testing.assert_allclose(value.numpy(), ref[key], atol=1e-5, err_msg=f"{env}: {key}")
    # the frozen skill prior copy holds the same pre-trained weights
    for a, b in zip(agent.skill_prior.parameters(), m.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("env", ["maze", "kitchen"])
def test_our_checkpoint_has_the_original_layout(original, env, tmp_path):
    fixtures = original
    agent, original, _ = _load(fixtures, env)
    pre = _agent(fixtures, env, phase="pretrain")
    path = save_checkpoint(tmp_path / f"{env}_ckpt_00000000001.pt", {"step": 1, "agent": pre.state_dict()})
    ours = torch.load(path, weights_only=True)["agent"]  # our format needs no allow-list
    for group in ("meta_agent", "skill_agent"):
        for module, state in original["agent"][group].items():
            if module == "ob_norm":
                assert set(ours[group][module]["ob"]) == set(state["ob"])
                continue
            assert set(ours[group][module]) == set(state), f"{group}.{module}"
            for k, v in state.items():
                assert tuple(ours[group][module][k].shape) == tuple(v.shape), f"{group}.{module}.{k}"
    assert set(ours["joint_optim"]) == set(original["agent"]["joint_optim"])
    # and loads back
    agent2 = _agent(fixtures, env)
    agent2.load_pretrained(load_checkpoint(path)["agent"])
    for a, b in zip(agent2.meta_agent.parameters(), pre.meta_agent.parameters()):
        assert torch.equal(a, b)


def test_wrong_env_checkpoint_fails_with_one_line_naming_the_module(original):
    agent = _agent(original, "maze")
    ckpt = load_checkpoint(original.ckpt("kitchen"))
    with pytest.raises(CheckpointError) as e:
        agent.load_pretrained(ckpt["agent"], source="kitchen_ckpt")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("kitchen_ckpt: ")
    # it names a parameter, with its true shapes in the checkpoint and in this model
    found = re.search(r"'(\w+)\.(\w+)\.([\w.]+)' has shape (\(.*?\)) in the checkpoint but (\(.*?\)) in this model", msg)
    assert found, msg
    group, module, key, theirs, ours = found.groups()
    assert str(tuple(ckpt["agent"][group][module][key].shape)) == theirs
    assert str(tuple(getattr(agent, group).state_dict()[f"{module}.{key}"].shape)) == ours != theirs


def test_loader_rejects_garbage_and_missing_files(tmp_path):
    bad = tmp_path / "bad_ckpt_00000000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad_ckpt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_sac_critic_is_dropped_when_input_size_differs(original):
    sac = ["rolf.sac=true", "rolf.n_skill=1", "rolf.use_cem=false", "rolf.prior_reg_critic=true"]
    agent = make_skimo_agent(original.sizes["maze"] + sac, phase="rl")
    before = [p.clone() for p in agent.meta_agent.model.critic.parameters()]
    ckpt = load_checkpoint(original.ckpt("maze"))
    agent.load_pretrained(ckpt["agent"])
    assert all(torch.equal(a, b) for a, b in zip(before, agent.meta_agent.model.critic.parameters()))
    ref = ckpt["agent"]["meta_agent"]["model"]["dynamics.fcs.0.weight"]
    assert torch.equal(agent.meta_agent.model.dynamics.fcs[0].weight, ref)
