#!/usr/bin/env python
"""Train one RecBole 1.2.1 sequential model and stream its progress as JSON lines.

Runs inside the RecBole venv (``bash ../shared/peers/recbole/setup_env.sh`` builds
``/tmp/recbole-venv``); ``benchmarks/train_throughput.py`` starts it as a child process and
kills it when the wall budget is spent, so everything the benchmark needs is written *while*
training, not at the end.

It mirrors the peer driver ``../shared/peers/recbole/run_one.py`` (same steps as
``recbole.quick_start.run_recbole`` without importing it: Config -> create_dataset ->
data_preparation -> model -> trainer.fit; the same ``common.yaml``; ``train_neg_sample_args:
None`` for CE models; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``; ``data_path`` re-pointed after
``Config()``) and differs where the benchmark needs it:

* any dataset name, not only ``ml-100k``: for other names the MovieLens column settings of
  RecBole's ``properties/dataset/ml-100k.yaml`` are given explicitly (RecBole's fallback
  ``sample.yaml`` loads only ``user_id, item_id``, i.e. no timestamp, so the leave-one-out
  split would follow file order);
* no self-imposed budget (run_one.py's ``--budget-sec`` stops *before* an epoch predicted to
  overrun); the parent process enforces a hard wall budget instead, identically for both
  tools;
* progress events (JSON lines, flushed as they happen) in ``--progress``:
  ``setup`` (data and model ready), ``fit_start``, ``batch`` (every ``--batch-every``
  seconds: samples and loss positions trained so far in the current epoch), ``epoch``
  (train and validation seconds, samples, positions, validation score/result, wall time at
  epoch end), and ``done`` if training ends by itself (early stopping or the epoch cap);
* training positions (tokens with a loss) are counted per batch: SASRec trains one
  prefix -> next-item sample per row (1 position per sample); BERT4Rec's loss covers
  the masked positions, counted as ``MASK_INDEX > 0`` exactly as its ``calculate_loss``
  weights them.

Usage (normally called by train_throughput.py):
    /tmp/recbole-venv/bin/python benchmarks/recbole_driver.py --model SASRec \
        --dataset ml-1m --data-dir /tmp/auxrec-bench/recbole-data/ml-1m \
        --progress /tmp/x.jsonl --set MAX_ITEM_LIST_LENGTH=200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# As in run_one.py: torch>=2.6 loads with weights_only=True, RecBole pickles its Config
# into checkpoints (only matters for the final test evaluation after a natural stop).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

CE_MODELS = {"SASRec", "BERT4Rec", "SASRecF"}
# RecBole's properties/dataset/ml-100k.yaml column settings, applied to other MovieLens
# datasets written in the same atomic format (user_id, item_id, rating, timestamp).
MOVIELENS_PRESET = {
    "field_separator": "\t",
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "RATING_FIELD": "rating",
    "TIME_FIELD": "timestamp",
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
    "user_inter_num_interval": None,
    "item_inter_num_interval": None,
    "normalize_all": True,
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="RecBole model name: SASRec or BERT4Rec")
    p.add_argument("--dataset", required=True, help="dataset name = atomic file stem, e.g. ml-1m")
    p.add_argument("--data-dir", required=True, help="folder holding <dataset>.inter (RecBole atomic files)")
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "shared/peers/recbole/common.yaml"),
                   help="base RecBole YAML (default: the peer's common.yaml)")
    p.add_argument("--mode", default="uni100", help="eval_args.mode: uni100 | full")
    p.add_argument("--progress", required=True, help="JSON-lines progress file to write")
    p.add_argument("--batch-every", type=float, default=5.0, help="seconds between 'batch' events")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                   help="extra RecBole parameter (repeatable), e.g. --set valid_metric=NDCG@10")
    return p.parse_args()


class Progress:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = path.open("w")

    def write(self, event: str, **fields) -> None:
        self.stream.write(json.dumps({"event": event, "t": time.time(), **fields}, default=str) + "\n")
        self.stream.flush()


def main() -> None:
    args = parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv itself
    progress = Progress(Path(args.progress))
    t_start = time.time()

    import numpy as np
    import torch
    import yaml
    from logging import getLogger

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    base = yaml.safe_load(Path(args.config).read_text())
    config_dict: dict = {} if args.dataset == "ml-100k" else dict(MOVIELENS_PRESET)
    config_dict["eval_args"] = dict(base["eval_args"], mode=args.mode)
    if args.model in CE_MODELS:
        config_dict["train_neg_sample_args"] = None  # see run_one.py / README workaround 5
    for kv in args.set:
        key, val = kv.split("=", 1)
        config_dict[key] = yaml.safe_load(val)

    config = Config(model=args.model, dataset=args.dataset, config_file_list=[args.config],
                    config_dict=config_dict)
    config["data_path"] = str(Path(args.data_dir).resolve())
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    t0 = time.time()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    t_data = time.time() - t0

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    progress.write(
        "setup",
        setup_sec=time.time() - t_start,
        data_prep_sec=t_data,
        n_trainable_params=int(n_params),
        dataset={
            "n_users": int(dataset.user_num - 1),  # id 0 is padding
            "n_items": int(dataset.item_num - 1),
            "inter_num": int(dataset.inter_num),  # RecBole counts rows after prefix augmentation
            "n_train_samples": int(len(train_data._dataset)),  # prefix -> next-item rows
            "n_valid_rows": int(len(valid_data._dataset)),
            "n_test_rows": int(len(test_data._dataset)),
        },
        versions={"recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__,
                  "python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        config={k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else str(v))
                for k, v in config.final_config_dict.items()},
    )

    # --- instrumentation on this trainer/model instance only ---------------------------
    state = {"epoch": -1, "epoch_start": 0.0, "samples": 0, "positions": 0, "batches": 0, "last_report": 0.0,
             "train_sec": 0.0, "valid_sec": None, "valid_score": None, "valid_result": None}
    orig_loss = model.calculate_loss
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def counted_loss(interaction):
        # Called once per batch; everything before it in this epoch has been trained.
        now = time.perf_counter()
        if now - state["last_report"] >= args.batch_every and state["batches"]:
            state["last_report"] = now
            progress.write("batch", epoch=state["epoch"], batches=state["batches"], samples=state["samples"],
                           positions=state["positions"], train_elapsed=now - state["epoch_start"])
        state["batches"] += 1
        state["samples"] += len(interaction)
        if "MASK_INDEX" in interaction:  # BERT4Rec: the loss is weighted by (masked_index > 0)
            state["positions"] += int((interaction["MASK_INDEX"] > 0).sum())
        else:  # SASRec & co.: one next-item target per prefix sample
            state["positions"] += len(interaction)
        return orig_loss(interaction)

    def timed_train(train_data_, epoch_idx, *a, **kw):
        state.update(epoch=int(epoch_idx), samples=0, positions=0, batches=0, valid_sec=None,
                     valid_score=None, valid_result=None)
        state["epoch_start"] = state["last_report"] = time.perf_counter()
        out = orig_train(train_data_, epoch_idx, *a, **kw)
        state["train_sec"] = time.perf_counter() - state["epoch_start"]
        return out

    def timed_valid(*a, **kw):
        s = time.perf_counter()
        score, result = orig_valid(*a, **kw)
        state.update(valid_sec=time.perf_counter() - s, valid_score=float(score),
                     valid_result={k: float(v) for k, v in result.items()})
        return score, result

    def epoch_done(epoch_idx, valid_score):  # fit's callback_fn: after validation and checkpoint
        progress.write("epoch", epoch=int(epoch_idx), train_seconds=state["train_sec"], samples=state["samples"],
                       positions=state["positions"], batches=state["batches"], valid_seconds=state["valid_sec"],
                       valid_score=state["valid_score"], valid_result=state["valid_result"],
                       loss=float(trainer.train_loss_dict.get(epoch_idx, float("nan"))))

    model.calculate_loss = counted_loss
    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid

    progress.write("fit_start")
    best_score, best_result = trainer.fit(train_data, valid_data, saved=True,
                                          show_progress=config["show_progress"], callback_fn=epoch_done)
    fit_end = time.time()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    progress.write("done", fit_end=fit_end, best_valid_score=float(best_score),
                   best_valid_result={k: float(v) for k, v in (best_result or {}).items()},
                   test={k: float(v) for k, v in test_result.items()},
                   stopped_by="early_stopping" if trainer.cur_step >= trainer.stopping_step else "epoch_cap")


if __name__ == "__main__":
    main()
