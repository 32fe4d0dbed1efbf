"""Why cold targets rank low under `full`: is it the id-versus-content scale, or content itself?

For a trained SASRec+/BERT4Rec+ run with content on the output side, each candidate's score
splits into an id part and a content part, ``h·e_id + h·e_content``. A cold target (no
training interaction) has only the content part. This script ranks every test target among
all items (history excluded, as `full`) and reports, for cold and warm targets apart:

- the median rank;
- of the items that beat the target, the share with training interactions ("warm"), and the
  share that would beat it on their content part alone: if that share is high, the id part
  is not what buries cold items, and calibrating the two parts (id dropout, an offset) cannot
  lift them much; content simply does not single the target out among thousands of items;
- the median rank on content scores alone, and the mean id part of the items that beat it.

    .venv/bin/python benchmarks/cold_start_ranks.py RUN [RUN ...] [--out results/cold_start_ranks.json]

Prints one table row per run and target group; writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from auxrec.evaluation.evaluator import history_mask, user_histories
from auxrec.experiments.runs import load_run


def diagnose(run: Path) -> list[dict[str, float | int | str]]:
    _, model, dataset = load_run(run)
    if getattr(model, "fusion", None) is None or not model.config.aux_on_output:
        raise SystemExit(f"{run}: needs a run trained with item features and aux_on_output")
    model.eval()
    users, targets = dataset.targets("test")
    counts = dataset.train_item_counts
    history = dataset.history("test")
    histories = user_histories(model, history, users)
    with torch.no_grad():
        states = model.user_states(torch.as_tensor(histories.sequences))
        id_part = states @ model.item_embedding.weight[: model.n_items + 1].T
        content_part = states @ model.fusion.all_items()[: model.n_items + 1].T
    total = id_part + content_part
    excluded = history_mask(history, users, model.n_items + 1)
    excluded[:, 0] = True  # padding
    warm_items = torch.as_tensor(counts > 0)
    found = []
    for group, chosen in (("cold", counts[targets] == 0), ("warm", counts[targets] > 0)):
        rows = torch.as_tensor(np.flatnonzero(chosen))
        if len(rows) == 0:
            continue
        target = torch.as_tensor(targets)[rows]
        own_total = total[rows, target][:, None]
        own_content = content_part[rows, target][:, None]
        competes = ~excluded[rows]
        competes[torch.arange(len(rows)), target] = False
        beaten = (total[rows] >= own_total) & competes
        by_content = (content_part[rows] >= own_content) & competes
        n_beaten = beaten.sum().clamp(min=1)
        found.append({
            "run": str(run), "targets": group, "users": len(rows),
            "median_rank": int((1 + beaten.sum(1)).median()),
            "share_of_beaters_warm": float((beaten & warm_items).sum() / n_beaten),
            "share_of_beaters_ahead_on_content_alone": float((beaten & by_content).sum() / n_beaten),
            "median_rank_on_content_alone": int((1 + by_content.sum(1)).median()),
            "mean_id_part_of_beaters": float((id_part[rows] * beaten).sum() / n_beaten),
            "mean_target_content_part": float(own_content.mean()),
        })
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cold_start_ranks.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for run in args.runs for row in diagnose(run)]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
