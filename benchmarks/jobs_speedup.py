#!/usr/bin/env python
"""Is `auxrec reproduce --jobs 2` worth it? One process with N threads vs N one-thread processes.

Trains one epoch of SASRec and BERT4Rec (after one warm-up batch) on a prepared dataset:
first in one process using every core, then in ``cores`` concurrent processes with one
thread each (what `--jobs cores` does), and reports epochs per second for both and their
ratio. Nothing else should run meanwhile.

    .venv/bin/python benchmarks/jobs_speedup.py PREPARED [--max-length 200] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def one_epoch(prepared: str, model_name: str, max_length: int, threads: int) -> float:
    """Seconds for one training epoch (batch 128, AdamW), after a warm-up batch."""
    import numpy as np
    import torch

    from auxrec.data.dataset import PreparedDataset
    from auxrec.experiments.runs import build_model, seeded
    from auxrec.models import lookup
    from auxrec.training.trainer import epoch_batches

    torch.set_num_threads(threads)
    dataset = PreparedDataset.load(prepared)
    _, config_class = lookup(model_name)
    with seeded(0):
        model, _ = build_model(model_name, config_class(max_length=max_length), dataset, ())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    batches = list(epoch_batches(model, dataset, 128, np.random.default_rng(0)))

    def step(batch: dict) -> None:
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()

    step(batches[0])
    started = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", help="a prepared dataset folder (auxrec prepare ...)")
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--models", default="sasrec,bert4rec")
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "THREADS", "MAX_LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, threads, max_length = args.child
        print(json.dumps({"seconds": one_epoch(args.prepared, model, int(max_length), int(threads))}))
        return 0
    cores = len(os.sched_getaffinity(0))

    def launch(model: str, threads: int) -> subprocess.Popen:
        command = [sys.executable, __file__, args.prepared, "--child", model, str(threads), str(args.max_length)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def seconds(process: subprocess.Popen) -> float:
        out, _ = process.communicate()
        if process.returncode:
            sys.exit(f"child failed with exit code {process.returncode}")
        return float(json.loads(out.strip().splitlines()[-1])["seconds"])

    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        together = seconds(launch(model, cores))
        apart = [seconds(p) for p in [launch(model, 1) for _ in range(cores)]]
        one_process = 1 / together
        n_processes = sum(1 / s for s in apart)
        rows.append({"model": model, "one_process_threads": cores, "one_process_epoch_s": round(together, 2),
                     "processes": cores, "per_process_epoch_s": [round(s, 2) for s in apart],
                     "epochs_per_s_one_process": round(one_process, 4),
                     "epochs_per_s_processes": round(n_processes, 4),
                     "speedup": round(n_processes / one_process, 2)})
    print(f"{'model':<10} {'1 process x ' + str(cores) + ' threads':>24} {str(cores) + ' processes x 1 thread':>28} "
          f"{'speedup':>8}")
    for row in rows:
        apart = " / ".join(f"{s:.2f}" for s in row["per_process_epoch_s"])
        print(f"{row['model']:<10} {row['one_process_epoch_s']:>20.2f} s/ep {apart:>23} s/ep {row['speedup']:>7.2f}x")
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "jobs_speedup", "prepared": args.prepared, "cores": cores,
                                        "max_length": args.max_length, "loadavg": os.getloadavg(),
                                        "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
