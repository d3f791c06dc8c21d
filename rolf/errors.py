"""Errors caused by user input (config, files, device), and Ctrl-C. run.py prints each as one line, without a
traceback (`debug_traceback=true` shows it)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    pass


class RunInterrupted(KeyboardInterrupt):
    """A stop signal (Ctrl-C, SIGTERM, SIGUSR1) during a run; the message says where the run stopped and how to
    resume it. `exit_code` is 128 + the signal number, as a shell reports a process killed by it."""

    def __init__(self, message: str = "", exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def one_line(error: BaseException) -> str:
    """An error message on one line: Hydra's and OmegaConf's multi-line reports are folded (lists of options
    joined with commas, the config search path dropped), and a chained cause is appended once."""
    text = _fold(str(error))
    cause = error.__cause__
    if cause is not None and str(cause) and _fold(str(cause)) not in text:
        text = f"{text.rstrip('.')}: {_fold(str(cause))}"
    return text or type(error).__name__


def _fold(text: str) -> str:
    text = text.split("Config search path:")[0]
    parts: list[str] = []
    listing = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if listing and raw[:1] in ("\t", " "):  # an item of a list introduced by a line ending in ':'
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            continue
        listing = line.endswith(":")
        if line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue  # OmegaConf's context lines repeat the key named in the message
        parts.append(line)
    return " ".join(p if p.endswith((".", ":")) or i == len(parts) - 1 else p + "." for i, p in enumerate(parts))


def exit_cli(main: Callable[[], int | None]) -> NoReturn:
    """Runs a command-line entry point (`python -m d4rl.generate ...`): a user error or Ctrl-C ends it with one
    line on stderr (exit 1 / 130) instead of a traceback."""
    try:
        code = main()
    except KeyboardInterrupt as e:
        print(str(e) if isinstance(e, RunInterrupted) else "interrupted (Ctrl-C)", file=sys.stderr)
        code = getattr(e, "exit_code", 130)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        code = 1
    sys.exit(code or 0)
