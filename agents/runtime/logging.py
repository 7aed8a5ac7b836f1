"""One logger for every trainer: append-only CSV plus optional TensorBoard scalars; the progress bar.

Why CSV first: it survives any crash line by line, is trivial to plot and to
diff, and resuming a run simply keeps appending (rows past the resumed step are
dropped so a resumed run never shows duplicated steps). In a data-parallel run only rank 0
writes; the other ranks get a :class:`NullLogger`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.runtime.distributed import DistContext, current_context

if TYPE_CHECKING:
    from agents.runtime.run_checkpoint import RunState


class MetricLogger:
    """Log scalar metrics per step to ``<out>/<name>.csv`` and, if enabled, TensorBoard."""

    def __init__(
        self,
        out_dir: str | Path,
        name: str = "metrics",
        tensorboard: bool = True,
        resume_from_step: int | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / f"{name}.csv"
        self._fields: list[str] | None = None
        if resume_from_step is not None and self.csv_path.exists():
            self._truncate_after(resume_from_step)
        elif self.csv_path.exists() and resume_from_step is None:
            self.csv_path.unlink()
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as handle:
                header = next(csv.reader(handle), None)
            self._fields = header
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        with self.csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
            fields = list(rows[0].keys()) if rows else None
        keep = [row for row in rows if int(float(row["step"])) <= step]
        with self.csv_path.open("w", newline="") as handle:
            if fields:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(keep)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one row; new metric names after the first row are written as extra columns."""
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        if self._fields is None or any(k not in self._fields for k in row):
            self._rewrite_with_fields(list(dict.fromkeys([*(self._fields or []), *row])))
        with self.csv_path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self._fields, restval="").writerow(row)
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)

    def _rewrite_with_fields(self, fields: list[str]) -> None:
        rows: list[dict[str, str]] = []
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        with self.csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        self._fields = fields

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def _plain(value: Any) -> Any:
    """Tensors and NumPy scalars to Python numbers, so CSV and TensorBoard get plain floats."""
    if hasattr(value, "item"):
        return value.item()
    return value


class NullLogger:
    """The :class:`MetricLogger` interface doing nothing (ranks > 0)."""

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Drop the row."""

    def close(self) -> None:
        """Nothing to close."""


def main_logger(ctx: DistContext, *args: Any, **kwargs: Any) -> MetricLogger | NullLogger:
    """A ``MetricLogger(*args, **kwargs)`` on rank 0, a :class:`NullLogger` on other ranks."""
    if not ctx.is_main:
        return NullLogger()
    return MetricLogger(*args, **kwargs)


def open_logger(
    run_dir: str | Path, state: RunState, resumed: bool, tensorboard: bool
) -> MetricLogger | NullLogger:
    """``metrics.csv`` (+ TensorBoard) in ``run_dir``; a resumed run drops rows past its checkpoint.

    Ranks other than 0 get a logger that writes nothing.
    """
    return main_logger(
        current_context(),
        run_dir,
        name="metrics",
        tensorboard=tensorboard,
        resume_from_step=state.step if resumed else None,
    )


def progress_bar(total: int, initial: int, enabled: bool, desc: str, **kwargs: Any):
    """A tqdm bar over a run's steps that starts at ``initial`` when resuming.

    It stays on screen when it is the only bar and is cleared when it sits below another
    (a bench cell under the bench's own bar: ``leave=None``).
    """
    from tqdm.auto import tqdm

    options = {"leave": None, "dynamic_ncols": True, **kwargs}
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, **options)
