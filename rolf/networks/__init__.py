from rolf.networks.distributions import TanhNormal, mc_kl, analytic_kl
from rolf.networks.mlp import MLP, Critic
from rolf.networks.encoders import Encoder, Decoder
from rolf.networks.heads import ActionDecoder, LSTMSkillEncoder

__all__ = ["TanhNormal", "mc_kl", "analytic_kl", "MLP", "Critic", "Encoder", "Decoder", "ActionDecoder", "LSTMSkillEncoder"]
