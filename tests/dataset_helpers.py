"""Shared by the dataset tests: the one-line error a bad dataset file gives."""

from __future__ import annotations

import pytest

from rolf.datasets.offline import DatasetError, load_trajectories


def dataset_error(path, **kw) -> str:
    """The DatasetError message of loading `path`, checked to be one line that names the file."""
    with pytest.raises(DatasetError) as e:
        load_trajectories(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg
