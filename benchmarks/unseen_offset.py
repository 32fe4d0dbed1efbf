"""How much does knowing that an item never occurred in training tell, under auxrec's protocols?

A tempting fix for cold items that never reach a top 10 under ``full`` (docs/results.md,
"Cold-start items") is a new-item prior: add an offset ``b`` to the scores of the items
without training interactions, with ``b`` chosen on validation. This script measures it on
finished runs, without retraining: for each run it fits ``b`` on validation NDCG@10 under
the run's validation protocol (0, then multiples of the validation scores' standard
deviation from -2 to 4 in steps of 0.5, then two halvings around the best; 0 is kept unless
another value is strictly better) and reports test NDCG@10 under each of the run's
protocols, for all targets and for targets with ("trained") and without ("new") training
interactions, without and with the offset. Id-only runs get the same offset on their
untrained id rows: with ids alone the order among new items is arbitrary, so the two show
what the prior does and what content adds to it.

Why this is an analysis and not a setting: a prepared catalogue holds only items someone
interacted with (`auxrec prepare` drops item rows without interactions), so an item
without training interactions is, by construction, some user's validation or test target
or a held-out cold item (H&M: all 495 such items are a validation or test target). The
fitted offset learns that, which no real catalogue (full of new items nobody buys) would
teach. Measuring the prior honestly needs the never-interacted items among the candidates.

    .venv/bin/python benchmarks/unseen_offset.py RUN [RUN ...] [--out results/unseen_offset.json]

Prints one table row per run and protocol; writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.evaluation.evaluator import evaluate, user_histories
from auxrec.experiments.runs import load_run
from auxrec.models.base import UserHistories

COARSE_STEPS = tuple(np.arange(-2.0, 4.0 + 1e-9, 0.5).round(3).tolist())  # in score standard deviations
REFINEMENTS = (0.25, 0.125)
SCALE_USERS = 256  # validation users whose scores set the grid's unit


class WithUnseenOffset(torch.nn.Module):
    """A trained model's scores plus an offset at the items without training interactions."""

    def __init__(self, model: Any, unseen: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.history_length = model.history_length
        self.unseen_items = torch.as_tensor(unseen)
        self.offset = 0.0

    def set_unseen_offset(self, offset: float) -> None:
        self.offset = offset

    def _add(self, scores: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return scores + self.offset * self.unseen_items[items].to(scores.dtype)

    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        scores = self.model.score(histories, candidates)
        items = torch.arange(scores.shape[1]) if candidates is None else torch.as_tensor(candidates)
        return self._add(scores, items)

    def item_range_scorer(self, histories: UserHistories) -> Callable[[int, int], torch.Tensor]:
        scorer = self.model.item_range_scorer(histories)
        return lambda start, stop: self._add(scorer(start, stop), torch.arange(start, stop))


@torch.no_grad()
def score_scale(model: Any, dataset: PreparedDataset) -> float:
    """Standard deviation of the first validation users' scores over the catalogue (offset 0)."""
    users, _ = dataset.targets("valid")
    users = users[:SCALE_USERS]
    scores = model.score(user_histories(model, dataset.history("valid"), users)).float()[:, 1:]
    return float(scores.std()) if scores.numel() > 1 else 0.0


def fit_unseen_offset(model: WithUnseenOffset, dataset: PreparedDataset, protocol: str, seed: int
                      ) -> dict[str, Any]:
    """Set ``model``'s offset to the one with the best validation NDCG@10; return what was tried."""
    model.set_unseen_offset(0.0)
    scale = score_scale(model, dataset)
    tried: dict[float, float] = {}

    def validation_value(offset: float) -> float:
        offset = float(np.float32(offset))
        if offset not in tried:
            model.set_unseen_offset(offset)
            tried[offset] = evaluate(model, dataset, "valid", protocol, seed).metrics["NDCG@10"]
        return tried[offset]

    def best() -> float:  # highest value; among equal ones the smallest offset in size (0 first)
        return max(tried, key=lambda offset: (tried[offset], -abs(offset)))

    validation_value(0.0)
    if scale > 0 and np.isfinite(scale):
        for step in COARSE_STEPS:
            validation_value(step * scale)
        for half in REFINEMENTS:
            centre = best()
            for offset in (centre - half * scale, centre + half * scale):
                validation_value(offset)
    chosen = best()
    model.set_unseen_offset(chosen)
    return {"offset": chosen, "scale": scale, "valid_without": tried[0.0], "valid_with": tried[chosen]}


def ndcg_at_10(ranks: np.ndarray) -> float:
    return float(np.mean(np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0))) if len(ranks) else float("nan")


def analyse(run: Path) -> list[dict[str, Any]]:
    config, model, dataset = load_run(run)
    unseen = dataset.train_item_counts == 0
    unseen[PADDING_ID] = False
    scorer = WithUnseenOffset(model, unseen).eval()
    seed = int(config["seed"])
    protocol = config["training"]["validation_protocol"]
    plain = {p: evaluate(scorer, dataset, "test", p, seed).ranks for p in config["protocols"]}
    found = fit_unseen_offset(scorer, dataset, protocol, seed)
    _, targets = dataset.targets("test")
    new = unseen[targets]
    rows = []
    for test_protocol in config["protocols"]:
        ranks = evaluate(scorer, dataset, "test", test_protocol, seed).ranks
        row: dict[str, Any] = {"run": run.name, "model": config["model"] + ("+" if config["item_features"] else ""),
                               "protocol": test_protocol, "offset": round(found["offset"], 4),
                               "offset_in_sd": round(found["offset"] / found["scale"], 3) if found["scale"] else 0.0,
                               "valid_without": found["valid_without"], "valid_with": found["valid_with"],
                               "new_targets": int(new.sum()), "targets": len(targets)}
        for name, chosen in (("without", plain[test_protocol]), ("with", ranks)):
            row[f"all_{name}"] = ndcg_at_10(chosen)
            row[f"new_{name}"] = ndcg_at_10(chosen[new])
            row[f"trained_{name}"] = ndcg_at_10(chosen[~new])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "unseen_offset.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        for row in analyse(run):
            rows.append(row)
            if len(rows) == 1:
                print("| " + " | ".join(row) + " |")
                print("|" + "---|" * len(row))
            print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()) + " |",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
