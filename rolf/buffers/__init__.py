from rolf.buffers.episode_buffer import InsufficientDataError, ReplayBufferEpisode
from rolf.buffers.transition_buffer import TransitionReplay

__all__ = ["InsufficientDataError", "ReplayBufferEpisode", "TransitionReplay"]
