"""Where a reproduction stands (``auxrec reproduce --dry-run``): each trial and run, and the time left."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from auxrec.experiments.plan import Variant
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.runs import training_seconds

Stage = Literal["tuning", "run"]
# "done": finished (or the winning trial becomes it); "partial": interrupted, resumes from
# ``epoch``; "waits for tuning": the tuned values it needs are not chosen yet.
State = Literal["done", "partial", "to train", "waits for tuning"]
STATES: tuple[State, ...] = ("done", "partial", "to train", "waits for tuning")


@dataclass(frozen=True)
class StatusEntry:
    """One tuning trial or run of a reproduction, and how far it is."""

    stage: Stage
    label: str  # the variant's label
    what: str  # "trial 2 {...}" or "seed 1"
    variant: Variant
    state: State
    epoch: int | None  # the last saved epoch of a partial run
    folder: RunFolder


def training_time_left(entries: Sequence[StatusEntry]) -> tuple[float, int]:
    """(seconds, runs without an estimate) for the unfinished entries of `Reproduction.status`.

    Each costs the median training time of finished runs of the same variant (else of the
    same model with any modalities, else of the model), less the share of epochs saved.
    """
    def kinds(variant: Variant) -> list[str]:
        return [variant.key, variant.model + "+", variant.model] if variant.aux else [variant.key]

    finished: dict[str, list[tuple[float, int]]] = {}
    for entry in entries:
        if entry.state == "done":
            record = entry.folder.read_training_log()
            if record.get("epochs"):
                for kind in kinds(entry.variant):
                    finished.setdefault(kind, []).append((training_seconds(record) or 0.0, len(record["epochs"])))
    seconds, unknown = 0.0, 0
    for entry in entries:
        if entry.state == "done":
            continue
        known = next((finished[kind] for kind in kinds(entry.variant) if kind in finished), None)
        if not known:
            unknown += 1
            continue
        run_seconds = statistics.median(s for s, _ in known)
        run_epochs = statistics.median(e for _, e in known)
        seconds += run_seconds * max(0.0, 1 - (entry.epoch or 0) / run_epochs)
    return seconds, unknown
