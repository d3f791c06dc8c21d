"""MLP: in-place activations give the values and gradients of the out-of-place modules."""

import pytest
import torch
from torch import nn

from rolf.networks.mlp import ACTIVATIONS, MLP


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_in_place_activations_match_out_of_place(act):
    torch.manual_seed(0)
    mlp = MLP(5, 3, [16, 16], act)
    reference = nn.Sequential(*[m if isinstance(m, nn.Linear) else type(m)() for m in mlp.fcs])  # shared Linears
    assert all(getattr(m, "inplace", True) for m in mlp.fcs if not isinstance(m, nn.Linear))
    x = torch.randn(32, 5, requires_grad=True)
    got, want = mlp(x), reference(x)
    torch.testing.assert_close(got, want)
    params = [x, *mlp.parameters()]
    for g, w in zip(torch.autograd.grad(got.square().sum(), params), torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_forward_concat_with_in_place_activations_keeps_its_inputs():
    torch.manual_seed(0)
    mlp = MLP(7, 2, [8], "elu")
    x, e = torch.randn(4, 3, 5), torch.randn(4, 1, 2)
    x0, e0 = x.clone(), e.clone()
    torch.testing.assert_close(mlp.forward_concat(x, e), mlp(torch.cat([x, e.expand(4, 3, 2)], -1)))
    assert torch.equal(x, x0) and torch.equal(e, e0)


def _graph_nodes(t: torch.Tensor) -> set[str]:
    seen, names, stack = set(), set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return names


def test_in_place_activations_on_batched_inputs_do_not_make_autograd_copy_slices():
    """An in-place op on a view (a Linear's output on a 3-D input is one) makes backward re-copy the whole base."""
    torch.manual_seed(0)
    mlp = MLP(6, 3, [8, 8], "elu")
    x = torch.randn(4, 5, 6, requires_grad=True)
    assert "CopySlices" not in _graph_nodes(mlp(x))
    assert "CopySlices" not in _graph_nodes(mlp.forward_concat(x[..., :4], x[:, :1, 4:]))
    assert "EluBackward1" in _graph_nodes(mlp(x))  # ELU's backward from its output (the in-place form)
