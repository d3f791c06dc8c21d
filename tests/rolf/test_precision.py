"""bf16 autocast (rolf.precision=bf16) against fp32 on fixed batches: losses, gradients and planner values agree
within bf16 tolerance, and parameters / losses stay fp32."""

import numpy as np
import pytest
import torch
from conftest import TINY, make_skimo_agent, skimo_pretrain_batch, skimo_rl_batch

from rolf.utils.precision import PrecisionError, parse_precision


def test_parse_precision():
    assert parse_precision(32) is None and parse_precision("fp32") is None
    assert parse_precision("bf16") is torch.bfloat16
    with pytest.raises(PrecisionError, match="rolf.precision='fp8'"):
        parse_precision("fp8")


def _agent_pair(phase: str):
    fp32 = make_skimo_agent(TINY, phase=phase)
    bf16 = make_skimo_agent(TINY + ["rolf.precision=bf16"], phase=phase)
    if phase == "rl":
        pre = make_skimo_agent(TINY)
        fp32.load_pretrained(pre.state_dict())
        bf16.load_pretrained(pre.state_dict())
    else:
        bf16.load_state_dict(fp32.state_dict())
    return fp32, bf16


def _flat_grad(modules) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for m in modules for p in m.parameters() if p.grad is not None])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def test_bf16_pretraining_losses_and_gradients_match_fp32():
    fp32, bf16 = _agent_pair("pretrain")
    batch = skimo_pretrain_batch(np.random.default_rng(0))
    grads, infos = [], []
    for agent in (fp32, bf16):
        torch.manual_seed(0)  # same MC samples
        ob = agent.preprocess(agent._to_tensor(batch["ob"]))
        with agent.autocast():
            total, info = agent.pretrain_losses(ob, agent._to_tensor(batch["ac"])[:, :-1])
        assert total.dtype == torch.float32
        total.backward()
        grads.append(_flat_grad([agent.meta_agent, agent.skill_agent]))
        infos.append(info)
    for key in ("hl_recon_loss", "ll_actor_loss", "consistency_loss", "vae_kl_div", "hl_actor_loss"):
        a, b = infos[0][key].item(), infos[1][key].item()
        assert b == pytest.approx(a, rel=0.05, abs=1e-3), key
    assert 0.99 < _cosine(*grads) < 1.0 - 1e-9  # close, and not identical: bf16 was in effect
    assert all(p.dtype == torch.float32 for p in bf16.meta_agent.parameters())


def test_bf16_rl_update_and_plan_values_match_fp32():
    fp32, bf16 = _agent_pair("rl")
    batch = skimo_rl_batch(np.random.default_rng(1))
    infos = []
    for agent in (fp32, bf16):
        torch.manual_seed(0)
        infos.append(agent.rl_step(batch))
    for key in ("model_loss", "critic_loss", "actor_prior_div", "value_target"):
        a, b = infos[0][key].item(), infos[1][key].item()
        assert b == pytest.approx(a, rel=0.05, abs=1e-2), key
    # planner: the same candidate skills scored by both models
    h = torch.randn(32, 16)
    actions = torch.rand(5, 32, 10) * 2 - 1
    values = []
    for agent in (fp32, bf16):
        torch.manual_seed(0)
        with agent.autocast():
            values.append(agent.planner.estimate_value(agent.meta_agent.model, agent.meta_agent.actor, h, actions))
    assert values[1].dtype == torch.float32
    torch.testing.assert_close(values[1], values[0], rtol=0.05, atol=0.02)
    assert not torch.equal(values[1], values[0])  # autocast did round the matmuls
    agent = bf16
    agent.set_step(10**6)
    z, mean = agent.act_meta(np.array([10.0, 24.0, 0.0, 0.0], np.float32), None, is_train=False)
    assert z.dtype == np.float32 and mean.dtype == torch.float32


def test_baselines_refuse_bf16():
    from conftest import compose_cfg

    from baselines.rl_trainer import build_method_agent
    from rolf.config import ConfigError

    with pytest.raises(ConfigError, match="SkiMo only"):
        build_method_agent(compose_cfg("tdmpc_config", ["rolf.precision=bf16"]))
