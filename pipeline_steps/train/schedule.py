"""Multi-step learning-rate schedules and early stop on plateau, shared by every trainer.

The event-generator study trained with "10k steps linear 1e-2 -> 1e-3, 490k constant, 500k polynomial
(degree 2) down to 1e-6" and restarted that schedule from its beginning whenever a job was resumed.
Here a schedule is a pure function of the *global optimisation step* (number of optimizer updates
done so far, 0-based): trainers keep that step in their checkpoints, so a resumed run continues at
the same point of the schedule. No framework is imported: torch sets ``param_group["lr"]`` (or a
``LambdaLR`` factor), TensorFlow assigns ``optimizer.learning_rate`` before each update.

``training.schedule`` is a list of steps, applied one after the other::

    - {length: 10000, unit: steps, law: linear, start: 1.0e-2, end: 1.0e-3}
    - {length: 490000, unit: steps, law: constant, start: 1.0e-3}
    - {length: 500000, unit: steps, law: polynomial, start: 1.0e-3, end: 1.0e-6, degree: 2}
    - {length: 10, unit: epochs, law: cosine, start: 1.0e-3, end: 0.0, period: 2}   # warm restarts

Lengths in ``epochs`` are converted with the trainer's number of updates per epoch. After the last
step the final learning rate is held. Learning rates are in the optimiser's own units (1/update).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pipeline_steps.common.errors import ConfigError

__all__ = ["ScheduleStep", "LearningRateSchedule", "EarlyStopping", "LAWS", "UNITS"]

LAWS = ("constant", "linear", "polynomial", "cosine")
UNITS = ("epochs", "steps")


@dataclass(frozen=True)
class ScheduleStep:
    """One piece of a schedule; ``length`` and ``period`` in ``unit`` (epochs or optimiser updates)."""

    length: int
    law: str
    start: float
    end: float | None = None
    unit: str = "steps"
    degree: float = 1.0
    period: int | None = None    # cosine: restart every ``period`` units (warm restarts); default no restart
    restarts: int | None = None  # cosine: alternatively, number of restarts inside the step

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], where: str) -> "ScheduleStep":
        unknown = sorted(set(entry) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; expected {sorted(cls.__dataclass_fields__)}")
        for key in ("length", "law", "start"):
            if key not in entry:
                raise ConfigError(f"{where}: missing required key {key!r}")
        step = cls(**dict(entry))
        if step.law not in LAWS:
            raise ConfigError(f"{where}.law: expected one of {list(LAWS)}, got {step.law!r}")
        if step.unit not in UNITS:
            raise ConfigError(f"{where}.unit: expected one of {list(UNITS)}, got {step.unit!r}")
        if int(step.length) < 1:
            raise ConfigError(f"{where}.length: expected an integer >= 1, got {step.length!r}")
        if step.law != "constant" and step.end is None:
            raise ConfigError(f"{where}: law {step.law!r} needs `end` (the learning rate at the end of the step)")
        if step.period is not None and step.restarts is not None:
            raise ConfigError(f"{where}: give either `period` or `restarts`, not both")
        return step

    def updates(self, steps_per_epoch: int) -> int:
        """Length in optimiser updates."""
        return int(self.length) * (int(steps_per_epoch) if self.unit == "epochs" else 1)

    def cycle(self, steps_per_epoch: int) -> int:
        """Cosine cycle length in updates (the whole step when it never restarts)."""
        total = self.updates(steps_per_epoch)
        if self.period is not None:
            return max(1, int(self.period) * (int(steps_per_epoch) if self.unit == "epochs" else 1))
        if self.restarts is not None:
            return max(1, math.ceil(total / (int(self.restarts) + 1)))
        return total

    def value(self, offset: int, steps_per_epoch: int) -> float:
        """Learning rate ``offset`` updates into this step (0 <= offset < length)."""
        start = float(self.start)
        end = start if self.end is None else float(self.end)
        total = self.updates(steps_per_epoch)
        if self.law == "constant":
            return start
        if self.law == "linear":
            return start + (end - start) * offset / total
        if self.law == "polynomial":
            return end + (start - end) * (1.0 - offset / total) ** float(self.degree)
        cycle = self.cycle(steps_per_epoch)
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * (offset % cycle) / cycle))


class LearningRateSchedule:
    """``lr_at(step)``: the learning rate of the update number ``step`` (0-based, global over resumes)."""

    def __init__(self, steps: Sequence[ScheduleStep], steps_per_epoch: int) -> None:
        if not steps:
            raise ConfigError("training.schedule: expected at least one step, got an empty list")
        if int(steps_per_epoch) < 1:
            raise ConfigError(f"training.schedule: steps per epoch must be >= 1, got {steps_per_epoch}")
        self.steps = tuple(steps)
        self.steps_per_epoch = int(steps_per_epoch)
        self.boundaries: list[int] = []
        total = 0
        for step in self.steps:
            total += step.updates(self.steps_per_epoch)
            self.boundaries.append(total)

    @classmethod
    def from_config(cls, schedule: Sequence[Mapping[str, Any]], steps_per_epoch: int,
                    where: str = "training.schedule") -> "LearningRateSchedule":
        steps = [ScheduleStep.from_config(entry, f"{where}[{i}]") for i, entry in enumerate(schedule)]
        return cls(steps, steps_per_epoch)

    @property
    def total_steps(self) -> int:
        return self.boundaries[-1]

    def lr_at(self, step: int) -> float:
        """Pure: the same step always gives the same rate; past the end, the last rate is held."""
        step = max(0, int(step))
        if step >= self.total_steps:
            last = self.steps[-1]
            return float(last.start if last.law == "constant" or last.end is None else last.end)
        index = bisect.bisect_right(self.boundaries, step)
        begin = self.boundaries[index - 1] if index else 0
        return self.steps[index].value(step - begin, self.steps_per_epoch)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``metric`` (a history column) has not improved by ``min_delta`` for ``patience`` epochs.

    Pure on the history rows, so a resumed run takes the same decision as an uninterrupted one.
    ``mode`` is ``min`` for losses/chi2, ``max`` for scores.
    """

    metric: str = "validation_loss"
    patience: int = 3
    min_delta: float = 0.0
    mode: str = "min"

    @classmethod
    def from_config(cls, entry: Mapping[str, Any] | None, default_metric: str,
                    default_mode: str = "min") -> "EarlyStopping | None":
        """None when not configured; ``default_mode`` applies only when the metric is the default one."""
        if not entry:
            return None
        unknown = sorted(set(entry) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"training.early_stopping: unknown keys {unknown}; expected {sorted(cls.__dataclass_fields__)}")
        mode = default_mode if entry.get("metric", default_metric) == default_metric else "min"
        settings = cls(**{"metric": default_metric, "mode": mode, **dict(entry)})
        if settings.mode not in ("min", "max"):
            raise ConfigError(f"training.early_stopping.mode: expected 'min' or 'max', got {settings.mode!r}")
        if int(settings.patience) < 1:
            raise ConfigError(f"training.early_stopping.patience: expected >= 1, got {settings.patience!r}")
        return settings

    def should_stop(self, history: Sequence[Mapping[str, Any]]) -> bool:
        """True when the last ``patience`` epochs brought no improvement over the best before them."""
        values = [float(row[self.metric]) for row in history if self.metric in row]
        if len(history) and self.metric not in history[-1]:
            raise ConfigError(f"training.early_stopping.metric: {self.metric!r} is not a history column; "
                              f"found {sorted(history[-1])}")
        if len(values) <= self.patience:
            return False
        sign = 1.0 if self.mode == "min" else -1.0
        best_before = min(sign * v for v in values[:-self.patience])
        recent = min(sign * v for v in values[-self.patience:])
        return not recent < best_before - float(self.min_delta)
