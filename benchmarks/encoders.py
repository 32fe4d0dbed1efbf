#!/usr/bin/env python
"""Item-encoder throughput and peak memory on this machine.

Each encoder runs in its own child process (so peak RSS is its own, model load
included) on the first ``--items`` items of a prepared dataset: texts rendered with the
dataset's template, image files from its image column. Reported per encoder: load
seconds, encode seconds, items/s (encode only), peak RSS (MiB), output dim, and how many
items were usable. The tabular encoder always fits on the whole training split (its
cost is the XGBoost grid search, not per item); items/s = all items / fit seconds.

    python benchmarks/encoders.py PREPARED --items 200 --json encoders.json
    python benchmarks/encoders.py PREPARED --encoders text-minilm,image-efficientnet

Encoders: text-minilm, text-data2vec, image-efficientnet, image-data2vec, tabular-xgboost
(the data2vec ones are skipped when their weights are not available locally).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENCODERS = ("text-minilm", "text-data2vec", "image-efficientnet", "image-data2vec", "tabular-xgboost")


def run_child(prepared: str, encoder: str, n_items: int, threads: int | None) -> dict[str, Any]:
    import numpy as np

    if threads:
        import torch

        torch.set_num_threads(threads)
    from auxrec.data.dataset import PreparedDataset
    from auxrec.exceptions import ConfigError

    dataset = PreparedDataset.load(prepared)
    items = dataset.items.head(n_items)
    result: dict[str, Any] = {"encoder": encoder, "items": len(items)}
    started = time.perf_counter()
    try:
        if encoder.startswith("text-"):
            from auxrec.features.templates import default_template, render_items
            from auxrec.features.text import load_text_encoder

            texts = [t for t in render_items(default_template(dataset.name, dataset.item_columns), items) if t]
            model = load_text_encoder(encoder.removeprefix("text-"), log=lambda _: None)
            loaded = time.perf_counter()
            vectors = model.encode(texts)
            result.update(usable=len(texts), dim=model.dim, description=model.description)
        elif encoder.startswith("image-"):
            from auxrec.features.image import load_image_encoder

            column = dataset.item_columns.image
            if column is None:
                return {**result, "skipped": "dataset has no image column"}
            paths = [p if isinstance(p, str) else None for p in items[column]]
            model = load_image_encoder(encoder.removeprefix("image-"), log=lambda _: None)
            loaded = time.perf_counter()
            vectors, ok = model.encode(paths)
            result.update(usable=int(ok.sum()), dim=model.dim, description=model.description)
        else:
            from auxrec.features.tabular import fit_tabular_embedding

            loaded = time.perf_counter()
            vectors, present, report = fit_tabular_embedding(dataset, log=lambda _: None)
            result.update(items=dataset.n_items, usable=int(present.sum()), dim=int(vectors.shape[1]),
                          description=report.description, holdout_mae=report.holdout_mae)
    except ConfigError as error:
        return {**result, "skipped": str(error)}
    done = time.perf_counter()
    assert np.isfinite(vectors).all()
    result.update(load_s=round(loaded - started, 2), encode_s=round(done - loaded, 2),
                  items_per_s=round(result["items"] / (done - loaded), 2),
                  peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", help="a prepared dataset folder (auxrec prepare)")
    parser.add_argument("--items", type=int, default=200, help="items per text/image encoder (default 200)")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated subset of: " + ", ".join(ENCODERS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=Path("encoders-benchmark.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.prepared, args.child, args.items, args.threads)))
        return
    results = []
    for encoder in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        if encoder not in ENCODERS:
            parser.error(f"unknown encoder {encoder!r}")
        command = [sys.executable, __file__, args.prepared, "--child", encoder, "--items", str(args.items)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            results.append({"encoder": encoder, "error": done.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done: {encoder}", file=sys.stderr)
    print(f"{'encoder':20s} {'items':>6s} {'usable':>6s} {'dim':>5s} {'load s':>7s} {'encode s':>9s} "
          f"{'items/s':>8s} {'peak MiB':>9s}")
    for r in results:
        if "items_per_s" in r:
            print(f"{r['encoder']:20s} {r['items']:6d} {r['usable']:6d} {r['dim']:5d} {r['load_s']:7.1f} "
                  f"{r['encode_s']:9.1f} {r['items_per_s']:8.1f} {r['peak_rss_mib']:9.0f}")
        else:
            print(f"{r['encoder']:20s} skipped: {r.get('skipped') or r.get('error')}")
    args.json.write_text(json.dumps({"prepared": args.prepared, "items": args.items, "results": results}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
