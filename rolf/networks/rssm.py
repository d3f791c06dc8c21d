"""Dreamer (v1) world-model blocks: the RSSM, the vector encoder and the unit-variance dense head
(spec §3.1.7). Attribute names follow the original rolf `networks/dreamer.py` (`encoders.ob.fc`, `cell`,
`deter_fc`, `obs_fc`, `imagine_fc`, `fc`), so original Dreamer checkpoints map onto these modules 1:1.

The observation decoder is `rolf.networks.encoders.Decoder` (MLP -> Normal(mean, (tanh + 1)·0.7 + 0.1), std in
[0.1, 1.5], same key names as the original `DenseDecoder`); it is not duplicated here.

Shapes: a latent state is an `RSSMState` of tensors with any leading batch shape `(...)`: mean/std/stoch
`(..., stoch)`, deter `(..., deter)`. Sequences are batch-major `(B, T, ...)` at the API boundary.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rolf.networks.encoders import _DenseBlock
from rolf.networks.mlp import MLP, activation

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class RSSMState(NamedTuple):
    """Stochastic state s ~ N(mean, std) (a reparameterised sample `stoch`) and the GRU state `deter`."""

    mean: torch.Tensor
    std: torch.Tensor
    stoch: torch.Tensor
    deter: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "RSSMState":
        return RSSMState(*(fn(x) for x in self))

    def detach(self) -> "RSSMState":
        return self.map(torch.Tensor.detach)

    @staticmethod
    def stack(states: list["RSSMState"], dim: int) -> "RSSMState":
        return RSSMState(*(torch.stack(xs, dim) for xs in zip(*states)))


def gaussian_kl(p_mean: torch.Tensor, p_std: torch.Tensor, q_mean: torch.Tensor, q_std: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(p) || N(q)) between diagonal Gaussians, summed over the last dim -> (...)."""
    var_ratio = (p_std / q_std) ** 2
    mean_term = ((p_mean - q_mean) / q_std) ** 2
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(-1)


def unit_normal_log_prob(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x | mean, 1) summed over the last dim -> (...)."""
    z = x - mean
    return (-0.5 * z * z - _HALF_LOG_2PI).sum(-1)


class DreamerEncoder(nn.Module):
    """Vector observation -> MLP(d_o, embed, hidden, act) with no final activation and no projection (the
    original's `Encoder` with one vector key). ob (..., d_o) -> embed (..., embed_dim)."""

    def __init__(self, ob_dim: int, embed_dim: int = 256, hidden_dims: list[int] | tuple[int, ...] = (256, 256),
                 act: str = "elu"):
        super().__init__()
        self.encoders = nn.ModuleDict({"ob": _DenseBlock(ob_dim, embed_dim, list(hidden_dims), act)})
        self.output_dim = embed_dim

    def forward(self, ob: torch.Tensor) -> torch.Tensor:
        return self.encoders["ob"](ob)


class DenseHead(nn.Module):
    """MLP -> Normal(mean, 1) (the original's `DenseDecoder1`; Dreamer reward and value heads)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: list[int] | tuple[int, ...], act: str = "elu"):
        super().__init__()
        self.fc = MLP(in_dim, out_dim, list(hidden_dims), act)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """The mean (= mode) of the Normal, (..., out_dim)."""
        return self.fc(feat)

    def log_prob(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """log N(target | fc(feat), 1) summed over out_dim; target (..., out_dim) -> (...)."""
        return unit_normal_log_prob(self.fc(feat), target)


class RSSM(nn.Module):
    """Recurrent state-space model (spec §3.1.7).

    h_t = GRU(ELU(Linear([s_{t-1}, a_{t-1}])), h_{t-1});  prior p(s_t | h_t) = N(MLP(h_t));
    posterior q(s_t | h_t, e_t) = N(MLP([h_t, e_t])); std = softplus(·) + 0.1; s_t is an rsample.
    """

    def __init__(self, embed_dim: int, action_dim: int, stoch_dim: int = 30, deter_dim: int = 200,
                 hidden_dim: int = 200, act: str = "elu"):
        super().__init__()
        self.stoch_dim, self.deter_dim = stoch_dim, deter_dim
        self.cell = nn.GRUCell(hidden_dim, deter_dim)
        self.deter_fc = MLP(stoch_dim + action_dim, hidden_dim, [], act)
        self.act = activation(act)
        self.obs_fc = MLP(deter_dim + embed_dim, 2 * stoch_dim, [hidden_dim], act)
        self.imagine_fc = MLP(deter_dim, 2 * stoch_dim, [hidden_dim], act)

    @property
    def feat_dim(self) -> int:
        return self.stoch_dim + self.deter_dim

    def initial(self, batch_size: int) -> RSSMState:
        """All-zero state (std included, as in the original) on the module's device/dtype; tensors (B, ·)."""
        p = self.cell.weight_hh
        zeros = lambda d: torch.zeros(batch_size, d, device=p.device, dtype=p.dtype)  # noqa: E731
        return RSSMState(zeros(self.stoch_dim), zeros(self.stoch_dim), zeros(self.stoch_dim), zeros(self.deter_dim))

    @staticmethod
    def get_feat(state: RSSMState) -> torch.Tensor:
        """concat(stoch, deter) -> (..., stoch + deter)."""
        return torch.cat([state.stoch, state.deter], -1)

    @staticmethod
    def kl(post: RSSMState, prior: RSSMState) -> torch.Tensor:
        """Analytic KL(post || prior) summed over the stochastic dims -> (...). Free nats are the caller's."""
        return gaussian_kl(post.mean, post.std, prior.mean, prior.std)

    @staticmethod
    def entropy(state: RSSMState) -> torch.Tensor:
        return (0.5 + _HALF_LOG_2PI + torch.log(state.std)).sum(-1)

    @staticmethod
    def _state(x: torch.Tensor, deter: torch.Tensor) -> RSSMState:
        mean, raw = x.chunk(2, -1)
        std = F.softplus(raw) + 0.1
        stoch = mean + std * torch.randn_like(mean)
        return RSSMState(mean, std, stoch, deter)

    def deter_step(self, prev: RSSMState, prev_action: torch.Tensor) -> torch.Tensor:
        x = self.act(self.deter_fc(torch.cat([prev.stoch, prev_action], -1)))
        return self.cell(x, prev.deter)

    def imagine_step(self, prev: RSSMState, prev_action: torch.Tensor) -> RSSMState:
        """Prior step: (state_{t-1} (N, ·), a_{t-1} (N, A)) -> state_t sampled from p(s_t | h_t)."""
        deter = self.deter_step(prev, prev_action)
        return self._state(self.imagine_fc(deter), deter)

    def obs_step(self, prev: RSSMState, prev_action: torch.Tensor, embed: torch.Tensor) -> RSSMState:
        """Posterior step (acting filter): embed e_t (N, E) -> state_t sampled from q(s_t | h_t, e_t)."""
        deter = self.deter_step(prev, prev_action)
        return self._state(self.obs_fc(torch.cat([deter, embed], -1)), deter)

    def both_step(self, prev: RSSMState, prev_action: torch.Tensor, embed: torch.Tensor) -> tuple[RSSMState, RSSMState]:
        deter = self.deter_step(prev, prev_action)
        prior = self._state(self.imagine_fc(deter), deter)
        post = self._state(self.obs_fc(torch.cat([deter, embed], -1)), deter)
        return post, prior

    def observe(self, embed: torch.Tensor, action: torch.Tensor,
                state: RSSMState | None = None) -> tuple[RSSMState, RSSMState]:
        """Filter a sequence. embed (B, T, E), action (B, T, A) where action[:, t] is the action that *led to*
        o_t (Dreamer convention, zeros at an episode start); state0 defaults to zeros.
        Returns (post, prior), each with tensors (B, T, ·); the recurrence continues from the posterior."""
        state = self.initial(action.shape[0]) if state is None else state
        posts, priors = [], []
        for t in range(action.shape[1]):
            post, prior = self.both_step(state, action[:, t], embed[:, t])
            posts.append(post)
            priors.append(prior)
            state = post
        return RSSMState.stack(posts, 1), RSSMState.stack(priors, 1)

    def imagine(self, action: torch.Tensor, state: RSSMState | None = None) -> RSSMState:
        """Open-loop prior rollout under given actions (B, T, A) -> states (B, T, ·)."""
        state = self.initial(action.shape[0]) if state is None else state
        priors = []
        for t in range(action.shape[1]):
            state = self.imagine_step(state, action[:, t])
            priors.append(state)
        return RSSMState.stack(priors, 1)
