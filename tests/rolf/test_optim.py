"""ClippedAdam / fast_adam: the fused kernel against torch's reference loop, clipping, and state round trips."""

import copy

import torch
from torch import nn

from rolf.utils.optim import ClippedAdam, fast_adam


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.ELU(), nn.Linear(32, 3))


def _grads(net: nn.Module, n: int, seed: int = 1) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g) for p in net.parameters()] for _ in range(n)]


def _run(opt: torch.optim.Optimizer, net: nn.Module, grads: list[list[torch.Tensor]]) -> None:
    for step_grads in grads:
        for p, g in zip(net.parameters(), step_grads):
            p.grad = g.clone()
        opt.step()


def test_fast_adam_matches_the_reference_loop():
    ref_net, net = _net(), _net()
    grads = _grads(ref_net, 20)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, eps=1e-7, foreach=False)
    opt = fast_adam(net.parameters(), lr=1e-2, eps=1e-7)
    assert opt.param_groups[0]["fused"]  # CPU has a fused kernel
    versions = [p._version for p in net.parameters()]
    _run(ref, ref_net, grads)
    _run(opt, net, grads)
    # the fused kernel does not bump version counters by itself (autograd's in-place checks and SkiMo's skill-act
    # snapshot read them): fast_adam does
    assert all(p._version > v for p, v in zip(net.parameters(), versions))
    moved = sum((a - b).abs().sum() for a, b in zip(net.parameters(), _net().parameters()))
    assert moved > 1.0  # the steps did something
    for a, b in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipped_adam_clips_and_returns_the_pre_clip_norm():
    net = _net()
    opt = ClippedAdam([net], lr=1e-3, grad_clip=0.5)
    x = torch.randn(16, 6)
    before = [p.detach().clone() for p in net.parameters()]
    norm = opt.step((net(x) ** 2).sum() * 100)
    assert norm > 0.5
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in net.parameters()]))
    torch.testing.assert_close(clipped, torch.tensor(0.5), rtol=1e-4, atol=0)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_loading_a_reference_state_keeps_the_fused_path_and_continues_identically():
    """A checkpoint of the original code carries `fused: None`; loading it must not switch back to the loop."""
    ref_net = _net()
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, eps=1e-7)
    first, second = _grads(ref_net, 5), _grads(ref_net, 5, seed=2)
    _run(ref, ref_net, first)
    state = copy.deepcopy(ref.state_dict())  # as read back from a checkpoint: no tensors shared with `ref`
    assert state["param_groups"][0]["fused"] is None

    net = _net()
    net.load_state_dict(ref_net.state_dict())
    opt = ClippedAdam([net], lr=1e-2, grad_clip=100.0)
    opt.load_state_dict(state)
    assert opt.optim.param_groups[0]["fused"] is True
    assert float(opt.optim.state[next(net.parameters())]["step"]) == 5.0
    _run(opt.optim, net, second)
    _run(ref, ref_net, second)
    for a, b in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
