"""Stop signals: SIGINT (Ctrl-C), SIGTERM (`kill`, SLURM at the end of a job) and SIGUSR1 (SLURM's warning before
pre-emption, `sbatch --signal=USR1@120`).

Inside a training loop (`STOPS.deferred()`), a stop signal is only recorded: the loop looks at `STOPS.requested`
at its next safe point (after the current update), writes a checkpoint at that step and ends the run with one line
saying where it is and how to resume it. A second signal stops at once (the checkpoints already on disk are
whole: they are written to a temporary file and renamed). Outside a loop (building the run, generating data) a
stop signal raises `StopRequested` at once, as Ctrl-C raises KeyboardInterrupt.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("skimo")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def signal_label(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stopped_line(signum: int, where: str, saved, command: str) -> str:
    """The one line a run ends with after a stop signal made it checkpoint at `where`."""
    return f"interrupted ({signal_label(signum)}) at {where}; saved {saved}; resume with: {command}"


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived where no checkpoint can be written (or a second one arrived)."""

    def __init__(self, signum: int):
        super().__init__(signal_label(signum))
        self.signum = signum


class StopSignals:
    def __init__(self) -> None:
        self.requested: int | None = None  # the signal number of a pending stop request
        self._deferred = 0
        self._previous: dict[int, object] = {}

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Handle the stop signals for the duration of a run (main thread only; elsewhere this is a no-op). A
        signal the process inherited as ignored (a job started with `&` ignores SIGINT) stays ignored."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            yield self
            return
        self.requested = None
        for s in STOP_SIGNALS:
            previous = signal.getsignal(s)
            if previous is not signal.SIG_IGN:
                self._previous[s] = signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, previous in self._previous.items():
                signal.signal(s, previous)
            self._previous = {}
            self.requested = None

    @contextmanager
    def deferred(self) -> Iterator[StopSignals]:
        """A block that checks `requested` at its safe points (a training loop)."""
        self._deferred += 1
        try:
            yield self
        finally:
            self._deferred -= 1

    def _handle(self, signum: int, frame) -> None:
        if self._deferred and self.requested is None:
            self.requested = signum
            log.info("%s received: stopping after the current step, with a checkpoint (again to stop at once)",
                     signal_label(signum))
            return
        raise StopRequested(signum)


STOPS = StopSignals()
