"""Fair tuning: the same grid for every tuned model, and one rule choosing among its trials.

Every trial of a variant is a run on the tuning seed, in ``WORKDIR/tuning/<variant>/trial-<i>``.
`choose` is the only place that picks the winner, for training (`Reproduction.tuned_values`)
and for `auxrec reproduce --dry-run` (`Reproduction.status`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxrec.experiments.plan import Variant
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.specs import TuningSpec

CRITERION = "valid NDCG@10 (validation protocol)"


@dataclass(frozen=True)
class Trial:
    """One point of the grid for one variant."""

    index: int  # position in the grid, from 0
    point: dict[str, Any]  # the grid's values
    values: dict[str, Any]  # the training settings it runs with: the point, and the tuning epoch cap if any
    folder: RunFolder


def trials_of(tuning: TuningSpec, workdir: Path, variant: Variant) -> list[Trial]:
    """Every trial of ``variant``, in grid order."""
    return [Trial(index, point, dict(point) | ({"epochs": tuning.epochs} if tuning.epochs else {}),
                  RunFolder(workdir / "tuning" / variant.key / f"trial-{index}"))
            for index, point in enumerate(tuning.trials)]


@dataclass(frozen=True)
class ScoredTrial:
    trial: Trial
    valid_ndcg: float  # NDCG@10 on the validation split, under the validation protocol


@dataclass(frozen=True)
class TuningChoice:
    """The winner of a variant's trials."""

    best: ScoredTrial
    # The winning trial's folder when it *is* the tuning seed's run (trained with the run's own
    # epoch cap), so that run is a copy of it rather than a second training; None otherwise.
    reusable_run: RunFolder | None

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.best.trial.point)


def choose(scored: Sequence[ScoredTrial], tuning: TuningSpec) -> TuningChoice:
    """The trial with the best validation NDCG@10; the first in grid order among equals."""
    best = max(scored, key=lambda entry: entry.valid_ndcg)
    return TuningChoice(best, None if tuning.epochs else best.trial.folder)
