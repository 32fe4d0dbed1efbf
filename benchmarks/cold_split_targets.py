"""What a cold-start split holds out: rare items or new ones, and how often they are targets.

Compares the cold and warm items of a prepared cold-start split (`auxrec prepare
--cold-start-fraction` or `--cold-start-where`) with the same data prepared without the
option, matched by original item id:

- items: how many are cold and warm;
- ratings: the median number of interactions per item in the plain preparation (all splits),
  which says whether the cold items are rarely used ones or ordinary ones;
- targets per item: validation and test targets per cold item and per warm item, and their
  ratio, which says how much the data rewards ranking cold items high (a ratio below 1: a
  cold item is less likely than a warm one to be somebody's next item);
- ``--column C``: the median of an item attribute (e.g. ``year``) for cold and warm items.

    .venv/bin/python benchmarks/cold_split_targets.py --cold P_COLD --plain P_PLAIN [--column year] \\
        [--out results/cold_split_targets.json]

On the ML-1M subset (docs/data.md): the time cut at 0.3 holds out films with a median of 10
ratings against 114, 0.15 test targets per cold film against 1.12 per warm one; the films of
2000 (`--cold-start-where "year >= 2000"`) are 4.2 times as often a test target as older films.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def describe(cold_folder: Path, plain_folder: Path, column: str | None) -> dict[str, object]:
    cold_items = pd.read_parquet(cold_folder / "items.parquet")
    interactions = pd.read_parquet(cold_folder / "interactions.parquet")
    plain = pd.read_parquet(plain_folder / "interactions.parquet")
    plain_ids = pd.read_parquet(plain_folder / "items.parquet").set_index("item")["original_id"]
    manifest = json.loads((cold_folder / "manifest.json").read_text())
    if "cold_start" not in manifest:
        raise SystemExit(f"{cold_folder}: not a cold-start split (prepare it with --cold-start-fraction or "
                         "--cold-start-where)")
    trained = set(interactions.loc[interactions["split"] == "train", "item"])
    cold_items["cold"] = ~cold_items["item"].isin(trained)
    uses = plain.groupby(plain["item"].map(plain_ids)).size()
    cold_items["uses"] = cold_items["original_id"].map(uses).fillna(0)
    row: dict[str, object] = {"cold_start": {k: v for k, v in manifest["cold_start"].items() if k != "rule"}}
    for group, frame in cold_items.groupby("cold"):
        name = "cold" if group else "warm"
        row[f"{name}_items"] = len(frame)
        row[f"{name}_median_uses"] = float(frame["uses"].median())
        if column:
            row[f"{name}_median_{column}"] = float(frame[column].median())
        for split in ("valid", "test"):
            targets = interactions.loc[interactions["split"] == split, "item"]
            row[f"{name}_{split}_targets_per_item"] = float(targets.isin(frame["item"]).sum() / len(frame))
    for split in ("valid", "test"):
        row[f"{split}_cold_over_warm"] = row[f"cold_{split}_targets_per_item"] / row[f"warm_{split}_targets_per_item"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=Path, required=True, help="prepared cold-start split")
    parser.add_argument("--plain", type=Path, required=True, help="the same data prepared without the option")
    parser.add_argument("--column", help="an item attribute to compare (e.g. year)")
    parser.add_argument("--out", type=Path, help="write the row as JSON here")
    args = parser.parse_args()
    row = describe(args.cold, args.plain, args.column)
    print(f"{args.cold}: {row['cold_start'].get('where') or 'time cut ' + str(row['cold_start'].get('cut_time_utc'))}")
    print(f"{'':6} {'items':>6} {'median uses':>12} {'valid targets/item':>19} {'test targets/item':>18}"
          + (f" {'median ' + args.column:>14}" if args.column else ""))
    for name in ("cold", "warm"):
        print(f"{name:6} {row[f'{name}_items']:>6,} {row[f'{name}_median_uses']:>12.0f} "
              f"{row[f'{name}_valid_targets_per_item']:>19.3f} {row[f'{name}_test_targets_per_item']:>18.3f}"
              + (f" {row[f'{name}_median_{args.column}']:>14.0f}" if args.column else ""))
    print(f"cold/warm targets per item: valid {row['valid_cold_over_warm']:.2f}, test {row['test_cold_over_warm']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
