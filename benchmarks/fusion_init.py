"""Does a fusion that starts as SASRec close SASRec+'s gap? Validation NDCG@10 on ML-100K.

Issue 13, item 3: over 10 seeds on ML-100K, SASRec+ (the paper's fusion: a random
projection W·k added to the id embeddings from the first step) is below ID-only SASRec.
This script trains, per seed, ID-only SASRec, SASRec+ in the paper's form and SASRec+
with the fusion options of `auxrec.models.fusion` (zero-initialised projection, a
learned gate starting at 0, LayerNorm, modality dropout), all through ``auxrec train``
with the same training settings, and compares them on **validation** NDCG@10 (the
sampled protocol that early stopping watches; test numbers are not read). The paired
difference to SASRec is per seed, then averaged.

Settings: the ML-100K reproduction's training section (``configs/ml-100k.toml``: batch
128, patience 2, validation every 4 epochs, up to 200 epochs) at one learning rate for all
(``--lr``, default 2e-3, the rate ML-100K's tuning chose for SASRec+), with ``--max-len 50``
instead of 200 so that a run takes 1-2 minutes on one CPU thread. Features: the basic
encoders (``--aux text,tabular`` by default: no downloads, cheap). A finished run folder
is reused, so an interrupted benchmark continues where it stopped.

    python benchmarks/fusion_init.py --source ../shared/data/ml-100k --seeds 0,1 --jobs 2
    python benchmarks/fusion_init.py --variants sasrec,paper,zero --seeds 0   # a subset

Writes ``benchmarks/results/fusion_init-ml-100k.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name → (label, extra `auxrec train` arguments); None = ID-only SASRec.
VARIANTS: dict[str, tuple[str, list[str] | None]] = {
    "sasrec": ("SASRec (ID only)", None),
    "paper": ("SASRec+ paper init", []),
    "zero": ("SASRec+ aux_init=zero", ["--set", "aux_init=zero"]),
    "gate": ("SASRec+ aux_gate=scalar", ["--set", "aux_gate=scalar"]),
    "modality_gate": ("SASRec+ aux_gate=modality", ["--set", "aux_gate=modality"]),
    "zero_norm": ("SASRec+ zero + aux_norm", ["--set", "aux_init=zero", "--set", "aux_norm=true"]),
    "zero_drop": ("SASRec+ zero + aux_dropout=0.2", ["--set", "aux_init=zero", "--set", "aux_dropout=0.2"]),
    "gate_norm_drop": ("SASRec+ scalar gate + norm + dropout 0.2",
                       ["--set", "aux_gate=scalar", "--set", "aux_norm=true", "--set", "aux_dropout=0.2"]),
}
DEFAULT_VARIANTS = "sasrec,paper,zero,gate,zero_drop"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k",
                   help="raw ML-100K folder (prepared once into WORKDIR/prepared)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/auxrec-fusion-init"))
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    p.add_argument("--aux", default="text,tabular", help="modalities (basic encoders)")
    p.add_argument("--fusion", default="concat", help="concat or sum")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2, help="trainings at once (one thread each)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fusion_init-ml-100k.json")
    return p.parse_args(argv)


def auxrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "auxrec", *args]


def prepare(args: argparse.Namespace) -> Path:
    prepared = args.workdir / "prepared"
    if not (prepared / "manifest.json").is_file():
        subprocess.run(auxrec("prepare", "ml-100k", "--source", str(args.source), "--out", str(prepared)),
                       check=True)
    return prepared


def train(args: argparse.Namespace, prepared: Path, variant: str, seed: int) -> Path:
    run = args.workdir / f"{variant}-seed{seed}"
    if (run / "metrics.json").is_file():
        return run  # finished earlier: reuse
    extra = VARIANTS[variant][1]
    command = auxrec(
        "train", "sasrec", "--data", str(prepared), "--out", str(run), "--seed", str(seed),
        "--max-len", str(args.max_len), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
        "--epochs", str(args.epochs), "--patience", str(args.patience), "--eval-every", str(args.eval_every),
        "--protocol", "sampled", "--no-progress", "--overwrite",
    )
    if extra is not None:
        command += ["--aux", args.aux, "--fusion", args.fusion, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = args.workdir / f"{variant}-seed{seed}.log"
    with log.open("w") as handle:
        subprocess.run(command, check=True, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return run


def summarise(run: Path) -> dict[str, float | int]:
    """Validation NDCG@10 of the restored (best) weights, the best epoch and the epochs trained."""
    log = json.loads((run / "training_log.json").read_text())
    epochs = log["epochs"] if isinstance(log, dict) else log
    validated = [e for e in epochs if e.get("valid_NDCG@10") is not None]
    best = max(validated, key=lambda e: e["valid_NDCG@10"])
    metrics = json.loads((run / "metrics.json").read_text())
    return {"valid_ndcg10": metrics["valid"]["sampled"]["NDCG@10"], "best_epoch": best["epoch"],
            "best_logged_valid_ndcg10": best["valid_NDCG@10"], "epochs": len(epochs),
            "fit_seconds": log.get("fit_seconds") if isinstance(log, dict) else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepared = prepare(args)
    started = time.perf_counter()
    jobs = [(v, s) for s in seeds for v in variants]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = dict(zip(jobs, pool.map(lambda job: train(args, prepared, *job), jobs), strict=True))
    results = {v: {s: summarise(runs[v, s]) for s in seeds} for v in variants}

    reference = "sasrec" if "sasrec" in variants else None
    rows = []
    for v in variants:
        values = [results[v][s]["valid_ndcg10"] for s in seeds]
        row = {"variant": v, "label": VARIANTS[v][0], "per_seed": {str(s): results[v][s] for s in seeds},
               "mean_valid_ndcg10": sum(values) / len(values)}
        if reference:
            diffs = [results[v][s]["valid_ndcg10"] - results[reference][s]["valid_ndcg10"] for s in seeds]
            row["mean_diff_vs_sasrec"] = sum(diffs) / len(diffs)
        rows.append(row)

    seed_columns = " ".join(f"{'seed ' + str(s):>17}" for s in seeds)
    header = f"{'variant':<44} {seed_columns} {'mean':>7} {'Δ SASRec':>9}"
    print(header)
    for row in rows:
        cells = " ".join(f"{r['valid_ndcg10']:.4f} (ep {r['best_epoch']:>3}/{r['epochs']:>3})"
                         for r in row["per_seed"].values())
        diff = f"{row['mean_diff_vs_sasrec']:+.4f}" if "mean_diff_vs_sasrec" in row else ""
        print(f"{row['label']:<44} {cells} {row['mean_valid_ndcg10']:.4f} {diff:>9}")
    print("valid NDCG@10 (sampled) of the restored weights; (ep best/trained)")

    import torch

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "what": "validation NDCG@10 (sampled protocol) on ML-100K: SASRec vs SASRec+ fusion options",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "variants": {v: VARIANTS[v][1] for v in variants},
        "results": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads_per_run": 1},
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
