"""SASRec's training speed, this checkout against an older one, side by side in one run.

Each *arm* is a complete ``auxrec train sasrec`` run (every setting its default: length 200,
batch 128, early stopping on validation) in its own process, with the same seed and
``--threads`` torch threads; arms are run one after another and, over ``--rounds``, in
alternating order, so a load change on a shared machine does not fall on one arm only.

Arms:
    before        the code under ``--baseline-src`` (e.g. ``git worktree add /tmp/before <commit>``)
    after         this checkout
    after-malloc-default   this checkout with glibc's default allocator (``AUXREC_MALLOC=default``),
                  to show what the allocator setting and the chunked output loss each give

For every run the table gives the training positions per second (all epochs' loss positions
over all epochs' training seconds, as the trainer logs them; validation excluded), the
epochs it trained and its test NDCG@10 and HR@10 under both protocols; then each arm's
speed ratio against ``before`` within the same round. Same seed, same data: identical
metrics mean the arithmetic did not change; the chunked output loss changes the order of
float sums, so there metrics agree to noise rather than bit for bit (the JSON keeps every
value).

    git worktree add /tmp/auxrec-before <old commit>
    .venv/bin/auxrec prepare ml-100k --source ../shared/data/ml-100k --out /tmp/ml100k-prof
    .venv/bin/python benchmarks/train_speedup.py --baseline-src /tmp/auxrec-before/src \\
        --data /tmp/ml100k-prof --rounds 2 --out benchmarks/results/train_speedup-ml-100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARMS = ("before", "after", "after-malloc-default")
METRICS = ("NDCG@10", "HR@10")


def arm_environment(arm: str, args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("AUXREC_MALLOC", None)
    env.pop("PYTHONPATH", None)
    # a src/ folder on PYTHONPATH shadows the editable install of this checkout
    if arm == "before":
        env["PYTHONPATH"] = str(args.baseline_src)
    elif args.candidate_src:
        env["PYTHONPATH"] = str(args.candidate_src)
    if arm == "after-malloc-default":
        env["AUXREC_MALLOC"] = "default"
    return env


def run_arm(arm: str, args: argparse.Namespace, round_: int) -> dict[str, Any]:
    out = args.runs / f"{arm}-seed{args.seed}-round{round_}"
    command = [sys.executable, "-m", "auxrec", "train", "sasrec", "--data", str(args.data), "--out", str(out),
               "--seed", str(args.seed), "--no-progress", "--overwrite", *args.extra]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    env = arm_environment(arm, args)
    check = subprocess.run([sys.executable, "-c", "import auxrec; print(auxrec.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    started = time.perf_counter()
    finished = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{finished.stderr[-3000:]}")
    log = json.loads((out / "training_log.json").read_text())
    epochs = log["epochs"] if isinstance(log, dict) else log
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    positions = sum(e["train_seconds"] * e["positions_per_second"] for e in epochs)
    seconds = sum(e["train_seconds"] for e in epochs)
    return {
        "arm": arm, "round": round_, "package": check, "command": " ".join(command), "wall_seconds": round(wall, 1),
        "epochs": len(epochs), "train_seconds": round(seconds, 2), "positions_per_second": round(positions / seconds, 1),
        "median_epoch_positions_per_second": statistics.median(e["positions_per_second"] for e in epochs),
        "train_losses": [e.get("train_loss") for e in epochs],
        "test": {protocol: {m: metrics[protocol][m] for m in METRICS} for protocol in metrics},
        "load_average_after": os.getloadavg(),
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| round | arm | epochs | positions/s | × before | NDCG@10 sampled | NDCG@10 full | HR@10 sampled | HR@10 full |")
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        before = next(r for r in results if r["round"] == result["round"] and r["arm"] == "before")
        ratio = result["positions_per_second"] / before["positions_per_second"]
        test = result["test"]
        print(f"| {result['round']} | {result['arm']} | {result['epochs']} | {result['positions_per_second']:,.0f} | "
              f"{ratio:.2f} | {test['sampled']['NDCG@10']:.4f} | {test['full']['NDCG@10']:.4f} | "
              f"{test['sampled']['HR@10']:.4f} | {test['full']['HR@10']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", type=Path, required=True, help="src/ folder of the older checkout")
    parser.add_argument("--candidate-src", type=Path,
                        help="src/ folder of the code to compare (default: this checkout's installed package); "
                             "a frozen copy lets you edit the checkout while the benchmark runs")
    parser.add_argument("--data", type=Path, default=Path("/tmp/ml100k-prof"), help="prepared ML-100K")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/train_speedup-runs"))
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="cap epochs (speed only; metrics then are not the default run's)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("extra", nargs="*", help="more `auxrec train` options, after --")
    args = parser.parse_args()
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    if "before" not in arms or any(arm not in ARMS for arm in arms):
        raise SystemExit(f"--arms must include 'before' and be among {', '.join(ARMS)}")
    report: dict[str, Any] = {
        "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "load_average_start": os.getloadavg(), "results": [],
    }
    for round_ in range(args.rounds):
        for arm in arms if round_ % 2 == 0 else arms[::-1]:
            result = run_arm(arm, args, round_)
            print(f"round {round_} {arm}: {result['positions_per_second']:,.0f} positions/s over {result['epochs']} "
                  f"epochs, test {result['test']}", flush=True)
            report["results"].append(result)
            if args.out:  # after every run, so a long comparison stopped early keeps what it measured
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(report["results"])


if __name__ == "__main__":
    main()
