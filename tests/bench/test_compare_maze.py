"""compare_maze's exploration summary reads every stored maze observation out of any method's replay buffer."""

import numpy as np
import torch

from bench.compare_maze import exploration, stored_positions


def test_stored_positions_collects_ob_arrays_of_every_buffer_layout():
    state = {"agent": {
        "hl_buffer": {"episodes": [{"ob": np.array([[10.0, 24.0, 0, 0], [11.5, 23.0, 0, 0]]), "ac": np.zeros((1, 10))}]},
        "buffer": {"data": {"ob": torch.tensor([[17.0, 9.0, 0, 0]]), "ob_next": torch.tensor([[30.0, 30.0, 0, 0]])}},
        "model": {"encoders.ob.fc.fcs.0.weight": torch.zeros(8, 4)},  # a weight whose name contains "ob"
    }}
    xy = stored_positions(state)
    assert sorted(map(tuple, xy.tolist())) == [(10.0, 24.0), (11.5, 23.0), (17.0, 9.0), (30.0, 30.0)]


def test_exploration_summary_from_the_last_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    torch.save({"agent": {"buffer": {"ob": np.array([[10.0, 24.0, 0, 0], [18.0, 11.0, 0, 0], [18.2, 11.5, 0, 0]])}}},
               tmp_path / "ckpt" / "maze_ckpt_00000000100.pt")
    e = exploration(tmp_path)
    assert e["closest_to_goal"] == 3.0 and e["cells_visited"] == 2 and e["stored_obs"] == 3
    assert exploration(tmp_path / "missing") == {}
