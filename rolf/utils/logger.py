"""Metrics logging: console + a local JSONL file always, wandb when asked (and never a crash without it).

Values may be tensors: they are converted to floats here, once per log call, not in the training loop.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from rolf.utils.files import write_text_atomic

log = logging.getLogger("skimo")


CONSOLE_FORMAT, CONSOLE_DATEFMT = "[%(asctime)s] %(message)s", "%H:%M:%S"  # as config/hydra/job_logging/console.yaml


def setup_console_logging() -> None:
    """Console logging for entry points that run without Hydra (Hydra configures it from job_logging)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=CONSOLE_FORMAT, datefmt=CONSOLE_DATEFMT)


def truncate_metrics(path: str | Path, step: int) -> int:
    """Keep the rows of a metrics.jsonl file with "step" <= `step` (all rows are dropped for step < 0), and drop a
    last line cut short by a killed process. Atomic (temporary file, then rename). Returns how many rows went."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            keep = int(row["step"]) <= step
        except (ValueError, KeyError, TypeError):
            keep = False  # a partial line (the writer was killed mid-write) or not a row
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    return dropped


def _to_float(v: Any) -> float | None:
    try:
        f = float(v.item()) if hasattr(v, "item") else float(v)
    except (TypeError, ValueError):
        return None
    return f


class Logger:
    def __init__(self, log_dir: str | Path, run_name: str, use_wandb: bool = False, config: dict | None = None,
                 wandb_project: str | None = None, wandb_entity: str | None = None, notes: str | None = None,
                 metrics_file: str = "metrics.jsonl"):
        self.log_dir = Path(log_dir)
        self.metrics_path = self.log_dir / metrics_file
        self._wandb = None
        if use_wandb:
            self._wandb = self._init_wandb(run_name, config, wandb_project, wandb_entity, notes)

    def _init_wandb(self, run_name, config, project, entity, notes):
        try:
            import wandb
        except ImportError:
            log.warning("wandb=true but the wandb package is not installed (pip install wandb): logging locally only")
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            return wandb.init(project=project or "skimo", entity=entity, name=run_name, id=run_name.replace("/", "_"),
                              resume="allow", config=config, notes=notes, dir=str(self.log_dir),
                              mode=os.environ.get("WANDB_MODE", "online"))
        except Exception as e:  # no account, no network, ...: keep training, say why once
            log.warning("wandb could not start (%s): logging locally only. Set WANDB_MODE=offline to log offline.",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return None

    def _append(self, row: dict[str, Any]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)  # made on the first row: a run that fails early leaves nothing
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def log(self, step: int, prefix: str, metrics: dict[str, Any], console: bool = True, head: str | None = None
            ) -> dict[str, float]:
        """Appends one row to metrics.jsonl (and wandb); prints it unless console=False, after `head` if given
        (e.g. the progress status) instead of 'step N'."""
        flat = {}
        for k, v in metrics.items():
            f = _to_float(v)
            if f is not None and math.isfinite(f):
                flat[f"{prefix}/{k}"] = f
            elif f is not None:
                flat[f"{prefix}/{k}"] = str(f)
        if not flat:
            return {}
        self._append({"step": int(step), **flat})
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in flat.items() if isinstance(v, float)}, step=int(step))
        if console:
            shown = ", ".join(f"{k.split('/', 1)[1]}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in list(flat.items())[:12])
            log.info("%s %s: %s", prefix, head or f"step {step}", shown)
        return flat

    def log_image(self, step: int, key: str, path: str | Path) -> None:
        self._append({"step": int(step), key: str(path)})
        if self._wandb is not None:
            import wandb

            self._wandb.log({key: wandb.Image(str(path))}, step=int(step))

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
