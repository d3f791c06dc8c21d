import numpy as np
import pytest
import torch

from rolf.buffers import InsufficientDataError, ReplayBufferEpisode


def _episode(m: int, start: float, one_more_ob: bool = True) -> dict:
    n_ob = m + 1 if one_more_ob else m
    return {"ob": start + np.arange(n_ob, dtype=np.float32)[:, None].repeat(2, 1), "ac": start + np.arange(m, dtype=np.float32)[:, None],
            "rew": np.zeros(m, np.float32), "done": np.r_[np.zeros(m - 1), 1.0].astype(np.float32)}


def _buffer(**kw) -> ReplayBufferEpisode:
    return ReplayBufferEpisode(("ob", "ac", "rew", "done"), capacity=kw.pop("capacity", 100), rng=np.random.default_rng(0), **kw)


def test_one_more_ob_shapes_and_alignment():
    buf = _buffer(one_more_ob=True)
    for i in range(3):
        buf.add_episode(_episode(12 + i, 1000.0 * i))
    batch = buf.sample(64, 5)
    assert batch["ob"].shape == (64, 6, 2) and batch["ac"].shape == (64, 5, 1) and batch["rew"].shape == (64, 5)
    # ob[t] and ac[t] come from the same step of the same episode: values are start + t in both
    assert np.array_equal(batch["ob"][:, :5, 0], batch["ac"][..., 0])
    # no sequence crosses an episode boundary: consecutive values
    assert np.all(np.diff(batch["ob"][..., 0], axis=1) == 1)


def test_sample_last_more_reaches_last_window_and_is_biased_towards_it():
    buf = _buffer(one_more_ob=True, sample_last_more=True)
    buf.add_episode(_episode(20, 0.0))
    starts = buf.sample(20000, 10)["ac"][:, 0, 0]
    assert starts.max() == 10 and starts.min() == 0  # the last window [10, 20) is reachable
    # t ~ U{0..19} clipped to 10: P(start == 10) = 10/20
    assert np.mean(starts == 10) == pytest.approx(0.5, abs=0.02)
    uniform = _buffer(one_more_ob=True)
    uniform.add_episode(_episode(20, 0.0))
    assert np.mean(uniform.sample(20000, 10)["ac"][:, 0, 0] == 10) == pytest.approx(1 / 11, abs=0.01)


def test_short_episodes_are_skipped_and_guard_raises():
    buf = _buffer(one_more_ob=True)
    buf.add_episode(_episode(3, 0.0))
    with pytest.raises(InsufficientDataError, match="longest has 3"):
        buf.sample(4, 5)
    assert not buf.can_sample(5)
    buf.add_episode(_episode(8, 100.0))
    batch = buf.sample(200, 5)
    assert np.all(batch["ac"][:, 0, 0] >= 100)  # only the long episode is used


def test_same_length_sampling_for_pretraining_data():
    buf = ReplayBufferEpisode(("ob", "ac", "done"), capacity=10, one_more_ob=False, rng=np.random.default_rng(1))
    ep = _episode(30, 0.0, one_more_ob=False)
    buf.add_episode({k: ep[k] for k in ("ob", "ac", "done")})
    b = buf.sample(8, 30)
    assert b["ob"].shape == (8, 30, 2) and b["ac"].shape == (8, 30, 1)
    assert np.all(b["ob"][:, 0, 0] == 0)  # a full-length sequence can only start at 0


def test_partial_rollouts_enter_only_when_done_and_capacity_is_fifo():
    buf = _buffer(one_more_ob=True, capacity=2)
    chunk = {"ob": [np.full(2, i, np.float32) for i in range(4)], "ob_next": [np.full(2, i + 1, np.float32) for i in range(4)],
             "ac": [np.array([i], np.float32) for i in range(4)], "rew": [0.0] * 4, "done": [0.0] * 4}
    assert buf.add_transitions(chunk) == 0 and len(buf) == 0
    chunk["done"] = [0.0, 0.0, 0.0, 1.0]
    assert buf.add_transitions(chunk) == 1
    ep = buf.get_episode(0)
    assert len(ep["ac"]) == 8 and len(ep["ob"]) == 9 and ep["ob"][-1, 0] == 4.0
    for i in range(3):
        buf.add_episode(_episode(5, 10.0 * (i + 1)))
    assert len(buf) == 2 and buf.get_episode(0)["ac"][0, 0] == 20.0  # oldest two dropped
    assert buf.num_transitions == 10


def test_episode_end_key_closes_episode_with_done_zero():
    buf = _buffer(one_more_ob=True)
    chunk = {"ob": [np.zeros(2, np.float32)] * 3, "ob_next": [np.ones(2, np.float32)] * 3, "ac": [np.zeros(1, np.float32)] * 3,
             "rew": [0.0] * 3, "done": [0.0] * 3, "episode_end": [False, False, True]}
    assert buf.add_transitions(chunk) == 1
    assert buf.get_episode(0)["done"].sum() == 0  # time-limit end kept bootstrapping


def test_state_dict_round_trip_is_tensor_only():
    buf = _buffer(one_more_ob=True)
    for i in range(3):
        buf.add_episode(_episode(6, 10.0 * i))
    state = buf.state_dict()
    assert all(isinstance(v, torch.Tensor) for ep in state["episodes"] for v in ep.values())
    other = _buffer(one_more_ob=True)
    other.load_state_dict(state)
    assert len(other) == 3
    for i in range(3):
        for k, v in buf.get_episode(i).items():
            assert np.array_equal(v, other.get_episode(i)[k])


def test_wrong_lengths_rejected():
    buf = _buffer(one_more_ob=True)
    ep = _episode(5, 0.0)
    ep["ob"] = ep["ob"][:-1]
    with pytest.raises(ValueError, match="'ob' has length 5, expected 6"):
        buf.add_episode(ep)
