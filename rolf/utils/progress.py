"""Progress over a phase's whole budget: a tqdm bar (rate, ETA) on an interactive terminal, and status lines with
steps/s, elapsed time and ETA that work everywhere (log files, SLURM output, CI).

    with Progress("pre-training", total=200_000, start=step) as progress:
        while step < total:
            ...
            step += 1
            progress.update(step)                  # moves the bar; says once, early, that training is under way
            if log_every(step):
                logger.log(step, "pretrain", metrics, head=progress.status(step))
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack

log = logging.getLogger("skimo")

FIRST_LINE_AFTER_S = 10.0  # the "under way" line comes this long after the loop starts (or at the first log line)


def format_duration(seconds: float) -> str:
    """12.3 -> '0:00:12'; 93784 -> '1 d 2:03:04'."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{days} d {h}:{m:02d}:{s:02d}" if days else f"{h}:{m:02d}:{s:02d}"


def every(n: int) -> str:
    """A cadence for the plan lines: 5000 -> 'every 5,000'; 0 -> 'off'."""
    return f"every {n:,}" if n > 0 else "off"


def show_bar(setting: bool | None) -> bool:
    """`progress_bar`: true/false force it; null shows the bar only when stderr is an interactive terminal."""
    return bool(sys.stderr.isatty()) if setting is None else bool(setting)


class Progress:
    """Steps done out of `total` (counted from `start`, e.g. a resumed checkpoint's step).

    The rate behind each status line's ETA is measured since the previous status line (the rate of RL changes
    over a run: warm-up without updates is fast, the planner's horizon grows), so the ETA follows the current pace.
    """

    def __init__(self, phase: str, total: int, start: int = 0, unit: str = "step", bar: bool | None = None):
        self.phase, self.total, self.start, self.unit = phase, int(total), int(start), unit
        self._bar_setting = bar
        self._stack = ExitStack()
        self.bar = None
        self.t0 = self._last_t = time.monotonic()
        self.step = self._last_step = self.start
        self._announced = False

    def __enter__(self) -> Progress:
        self.t0 = self._last_t = time.monotonic()
        if show_bar(self._bar_setting) and self.total > self.start:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = self._stack.enter_context(tqdm(total=self.total, initial=self.start, desc=self.phase,
                                                      unit=self.unit, unit_scale=self.total >= 10_000, dynamic_ncols=True,
                                                      smoothing=0.05, file=sys.stderr))
            self._stack.enter_context(logging_redirect_tqdm())  # log lines print above the bar, not through it
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def update(self, step: int) -> None:
        if self.bar is not None and step > self.step:
            self.bar.update(step - self.step)
        self.step = step
        if not self._announced and time.monotonic() - self.t0 >= FIRST_LINE_AFTER_S:
            log.info("%s under way: %s", self.phase, self.status(step))

    def status(self, step: int) -> str:
        """'1,200/200,000 steps (0.6 %) | 3.1 steps/s | elapsed 0:06:27 | ETA 17:49:00'."""
        now = time.monotonic()
        rate = (step - self._last_step) / max(now - self._last_t, 1e-9)
        if step == self._last_step:  # nothing since the last line: the phase's mean rate
            rate = (step - self.start) / max(now - self.t0, 1e-9)
        self._last_t, self._last_step, self._announced = now, step, True
        left = max(self.total - step, 0)
        eta = left / rate if rate > 0 else float("inf")
        pct = 100.0 * step / self.total if self.total else 100.0
        shown_rate = f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"
        return (f"{step:,}/{self.total:,} {self.unit}s ({pct:.1f} %) | {shown_rate} {self.unit}s/s | "
                f"elapsed {format_duration(now - self.t0)} | ETA {format_duration(eta) if left else '0:00:00'}")
