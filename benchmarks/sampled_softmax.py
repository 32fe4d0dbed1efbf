"""Full softmax (``loss=ce``) against the sampled softmax (``loss=sampled``) for SASRec.

Two parts (benchmarks/README.md, "Large catalogues"):

``collect RUN... --out FILE``: accuracy and speed of finished runs (trained with ``auxrec
train``): test NDCG@10 under ``sampled`` and ``full``, epochs, and the median training
seconds per epoch (the median, because other jobs share the machine); for each seed with a
``ce`` and a ``sampled`` run, the paired per-user NDCG@10 difference with its 95% interval.

``step --out FILE``: one training step (loss, backward) of SASRec on random sequences, 128
users × 50 positions, d = 64, for growing catalogues: the median milliseconds of alternated
repeats and the size of the logits each loss builds (full softmax: positions × items).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.runs import seeded
from auxrec.models.sasrec import SASRec, SASRecConfig


def collect(runs: list[Path]) -> list[dict[str, object]]:
    found = []
    for path in runs:
        run = RunFolder(path)
        config, metrics, log = run.read_config(), run.read_metrics(), run.read_training_log()
        epochs = log["epochs"]
        found.append({
            "run": str(path), "seed": config["seed"], "loss": config["model_config"]["loss"],
            "n_negatives": config["model_config"].get("n_negatives"),
            "test_ndcg10_sampled": metrics["test"]["sampled"]["NDCG@10"],
            "test_ndcg10_full": metrics["test"]["full"]["NDCG@10"],
            "epochs": len(epochs),
            "best_epoch": max(epochs, key=lambda e: e.get("valid_NDCG@10") or -1)["epoch"],
            "median_train_seconds_per_epoch": statistics.median(e["train_seconds"] for e in epochs),
        })
    return found


def paired_differences(found: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per seed, mean per-user NDCG@10 of sampled minus ce, ± 1.96 standard errors, per protocol."""
    by_seed: dict[object, dict[object, str]] = {}
    for run in found:
        by_seed.setdefault(run["seed"], {})[run["loss"]] = str(run["run"])
    differences = []
    for seed, runs in sorted(by_seed.items(), key=lambda item: str(item[0])):
        if not {"ce", "sampled"} <= set(runs):
            continue
        for protocol in ("sampled", "full"):
            ranks = [pd.read_parquet(RunFolder(Path(runs[loss])).ranks_path / f"test-{protocol}.parquet")
                     for loss in ("ce", "sampled")]
            both = ranks[0].merge(ranks[1], on="user", suffixes=("_ce", "_sampled"))
            ndcg = {loss: np.where(both[f"rank_{loss}"] <= 10, 1 / np.log2(both[f"rank_{loss}"] + 1), 0.0)
                    for loss in ("ce", "sampled")}
            difference = ndcg["sampled"] - ndcg["ce"]
            half_width = 1.96 * difference.std(ddof=1) / np.sqrt(len(difference))
            differences.append({"seed": seed, "protocol": protocol,
                                "ndcg10_sampled_minus_ce": float(difference.mean()),
                                "ci95_half_width": float(half_width), "users": len(difference)})
    return differences


def step_times(n_items_list: list[int], repeats: int, n_negatives: int) -> list[dict[str, object]]:
    batch, length = 128, 50
    results = []
    for n_items in n_items_list:
        rng = np.random.default_rng(0)
        window = torch.from_numpy(rng.integers(1, n_items + 1, size=(batch, length + 1)))
        models, batches = {}, {}
        for loss in ("ce", "sampled"):
            with seeded(0):
                models[loss] = SASRec(SASRecConfig(max_length=length, loss=loss, n_negatives=n_negatives),
                                      n_users=batch, n_items=n_items).train()
            batches[loss] = {"inputs": window[:, :-1], "targets": window[:, 1:]}
            if loss == "sampled":
                batches[loss]["sampled_items"] = torch.from_numpy(models[loss].draw_sampled_items(rng))
        times: dict[str, list[float]] = {"ce": [], "sampled": []}
        for _ in range(repeats):  # alternated, so a busy moment of the machine hits both
            for loss, model in models.items():
                model.zero_grad(set_to_none=True)
                started = time.perf_counter()
                model.loss(batches[loss]).backward()
                times[loss].append(time.perf_counter() - started)
        positions = batch * length
        for loss in ("ce", "sampled"):
            width = n_items if loss == "ce" else 1 + n_negatives
            results.append({"n_items": n_items, "loss": loss,
                            "n_negatives": n_negatives if loss == "sampled" else None,
                            "median_step_ms": 1000 * statistics.median(times[loss]),
                            "logits_mib": positions * width * 4 / 2**20})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    collecting = commands.add_parser("collect")
    collecting.add_argument("runs", nargs="+", type=Path)
    collecting.add_argument("--out", type=Path, required=True)
    stepping = commands.add_parser("step")
    stepping.add_argument("--items", default="1682,3706,20000,50000")
    stepping.add_argument("--repeats", type=int, default=5)
    stepping.add_argument("--n-negatives", type=int, default=1000)
    stepping.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    if arguments.command == "collect":
        runs = collect(arguments.runs)
        result: object = {"runs": runs, "paired": paired_differences(runs)}
    else:
        sizes = [int(n) for n in arguments.items.split(",")]
        result = step_times(sizes, arguments.repeats, arguments.n_negatives)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
