from rolf.buffers.episode_buffer import ReplayBufferEpisode, InsufficientDataError

__all__ = ["ReplayBufferEpisode", "InsufficientDataError"]
