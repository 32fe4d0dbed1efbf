"""What reading only the last N items costs: SASRec and BERT4Rec at several maximum lengths.

The ML-1M reproduction spec (``configs/ml-1m.toml``) cuts the transformers' maximum length
from 200 to 50 so that its reproduction fits 2 cores. This script measures what such a cut
does to quality and time: one run per model and length, seed 0, with everything else as
the dataset's reproduction spec says (its training section, the model's min_epochs) and the
learning rates given (by default those ML-100K's tuning chose). It reports test NDCG@10
under the sampled and full protocols.

Settings come from the reproduction's own code (`Reproduction`), and a finished run of a
reproduction work folder with exactly these settings is reused instead of trained again
(``--reproduction WORKDIR``, which also supplies the prepared data), so on ML-100K only the
cut lengths cost time. On the GPU
machine (``--device cuda``) a 200-long ML-1M BERT4Rec run takes minutes instead of hours.
Quality comparisons hold within one device; times are that device's.

    python benchmarks/length_cut.py --dataset ml-100k --lengths 50,200 --reproduction auxrec-runs/ml-100k
    python benchmarks/length_cut.py --dataset ml-1m --lengths 50,200 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

CHOSEN_BY_ML100K_TUNING = {"sasrec": 2e-3, "bert4rec": 5e-3}
LABELS = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-1m", help="reproduction spec name (configs/NAME.toml)")
    p.add_argument("--lengths", default="50,200", help="comma-separated maximum lengths")
    p.add_argument("--models", default="sasrec,bert4rec", help="comma-separated: sasrec, bert4rec")
    p.add_argument("--learning-rates", default=",".join(f"{m}={v}" for m, v in CHOSEN_BY_ML100K_TUNING.items()),
                   help="MODEL=LR,...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--reproduction", type=Path, default=None,
                   help="a reproduction work folder: its prepared data, and its finished runs where settings match "
                        "(default: prepare the spec's source, train everything)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/auxrec-length-cut"))
    p.add_argument("--max-epochs", type=int, default=None, help="epoch cap (only for a smoke run)")
    p.add_argument("--out", type=Path, default=None, help="JSON (default: benchmarks/results/length_cut-DATASET.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from auxrec.experiments.reproduce import Reproduction, table1_variant
    from auxrec.experiments.runs import package_versions, train_run
    from auxrec.experiments.specs import find_spec, load_spec

    spec = load_spec(find_spec(args.dataset))
    reproduction = Reproduction(spec, args.reproduction or args.workdir / args.dataset, args.workdir / "reports",
                                progress=False)
    with reproduction:
        data = reproduction.ensure_prepared()
    rates = {m: float(v) for m, v in (pair.split("=") for pair in args.learning_rates.split(","))}
    rows = []
    for model in args.models.split(","):
        variant, chosen = table1_variant(LABELS[model]), {"learning_rate": rates[model]}
        model_layers, training_layers = reproduction._layers(variant, chosen)  # as the reproduction trains it
        spec_length = reproduction._resolved(variant, (model_layers, training_layers))[0]["max_length"]
        reference = reproduction.run_dir(variant, args.seed)
        for length in (int(n) for n in args.lengths.split(",")):
            start = time.perf_counter()
            if (args.reproduction is not None and length == spec_length and not args.max_epochs
                    and reproduction._finished(variant, args.seed, chosen, reference)):
                out, how = reference, "reused"
                metrics = json.loads((out / "metrics.json").read_text())
            else:
                out, how = args.workdir / args.dataset / "runs" / f"{model}-len{length}", "trained"
                bench = {"device": args.device} | ({"epochs": args.max_epochs} if args.max_epochs else {})
                metrics = train_run(model, data, out, seed=args.seed,
                                    model_layers=[*model_layers, ("cut", {"max_length": length})],
                                    training_layers=[*training_layers, ("bench", bench)],
                                    protocols=("sampled", "full"), overwrite=True)
            log = json.loads((out / "training_log.json").read_text())
            best = [e["epoch"] for e in log["epochs"] if e.get("best")]
            row = {"model": model, "max_length": length, "run": str(out), "how": how,
                   "fit_seconds": log["fit_seconds"], "epochs": len(log["epochs"]),
                   "best_epoch": best[-1] if best else None,
                   "positions_per_second": sum(e["positions_per_second"] for e in log["epochs"]) / len(log["epochs"]),
                   "test_ndcg10_sampled": metrics["test"]["sampled"]["NDCG@10"],
                   "test_ndcg10_full": metrics["test"]["full"]["NDCG@10"],
                   "wall_seconds_here": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.dataset}, seed {args.seed}\n"
          "| model | max length | run | epochs (best) | fit s | test NDCG@10 sampled | full |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['max_length']} | {r['how']} | {r['epochs']} ({r['best_epoch']}) "
              f"| {r['fit_seconds']:.0f} | {r['test_ndcg10_sampled']:.4f} | {r['test_ndcg10_full']:.4f} |")
    device = (torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available()
              else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    out_json = args.out or Path("benchmarks/results") / f"length_cut-{args.dataset}.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"command": " ".join(sys.argv), "device": device, "seed": args.seed,
                                    "learning_rates": rates, "rows": rows, "versions": package_versions()},
                                   indent=2))
    print(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
