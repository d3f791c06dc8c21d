"""Progress over a phase's budget: status lines (steps/s, elapsed, ETA), the early 'under way' line, the bar."""

import logging

import pytest

from rolf.utils import progress as progress_mod
from rolf.utils.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


def test_format_duration():
    assert format_duration(12.3) == "0:00:12"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(93784) == "1 d 2:03:04"
    assert format_duration(float("inf")) == "?"


def test_status_reports_rate_elapsed_and_eta_from_the_last_interval(clock):
    with Progress("rl", total=1000, start=100, bar=False) as p:
        clock.now += 10
        p.update(200)  # 100 steps in 10 s
        assert p.status(200) == "200/1,000 steps (20.0 %) | 10 steps/s | elapsed 0:00:10 | ETA 0:01:20"
        clock.now += 10
        p.update(250)  # slower now: 50 steps in 10 s -> the ETA follows the current pace
        assert p.status(250) == "250/1,000 steps (25.0 %) | 5 steps/s | elapsed 0:00:20 | ETA 0:02:30"
        assert p.status(1000).endswith("ETA 0:00:00")


def test_under_way_line_comes_once_after_the_first_seconds(clock, caplog):
    caplog.set_level(logging.INFO, logger="skimo")
    with Progress("pre-training", total=200_000, bar=False) as p:
        clock.now += progress_mod.FIRST_LINE_AFTER_S - 1
        p.update(3)
        assert not caplog.records
        clock.now += 1
        p.update(4)
        clock.now += 5
        p.update(6)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["pre-training under way: 4/200,000 steps (0.0 %) | 0.4 steps/s | elapsed 0:00:10 | ETA 5 d 18:53:10"]


def test_a_status_line_before_the_first_seconds_replaces_the_under_way_line(clock, caplog):
    caplog.set_level(logging.INFO, logger="skimo")
    with Progress("rl", total=100, bar=False) as p:
        clock.now += 1
        p.update(10)
        p.status(10)  # e.g. the first log interval
        clock.now += 60
        p.update(20)
    assert not caplog.records


def test_bar_shows_the_whole_budget_and_log_lines_print_above_it(capsys, caplog):
    log = logging.getLogger("skimo")
    with Progress("rl", total=2000, start=500, bar=True) as p:
        p.update(1000)
        log.warning("a log line")
    err = capsys.readouterr().err
    assert "rl:" in err and "1000/2000" in err and "a log line" in err
