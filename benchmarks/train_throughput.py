#!/usr/bin/env python
"""Training throughput and time-to-quality: auxrec vs RecBole 1.2.1 (SASRec, BERT4Rec).

For every dataset × model × tool this trains one model in a child process under the same
wall-clock budget and reports, per tool:

* training positions per second (tokens that carry a loss; the unit both tools share),
* seconds per epoch in the tool's own sense (auxrec: one pass over every user's sequence;
  RecBole: one pass over every prefix -> next-item sample),
* the best validation NDCG@10 (100 uniformly sampled negatives in both tools) reached
  within the budget, and the wall time at which each tool first reaches the *other*
  tool's best,
* peak RSS of the child process,

prints a table with auxrec / RecBole ratios and writes everything to JSON.

Budget and kill logic
---------------------
The budget covers training + validation only: it starts when the tool begins its first
training epoch (data loading, id remapping and model construction are reported separately
as ``setup_sec``), and the parent kills the child's process group when it expires. Both
tools are treated the same way; neither is asked to stop itself.

* auxrec: the child calls the library's ``auxrec.experiments.runs.train_run`` unchanged
  (epochs = ``--auxrec-max-epochs``, ``eval_every=1``). ``train_run`` writes
  ``.RUN.partial/versions.json`` immediately before ``model.fit``: its mtime is the fit
  start. After every epoch the trainer atomically replaces ``.RUN.partial/checkpoint.pt``,
  whose ``log`` holds the epoch records (train/valid seconds, positions/s, validation
  NDCG@10). The parent reloads it whenever its mtime changes (``torch.load(...,
  weights_only=False)``); the mtime is the epoch's end on the wall clock. If training stops
  by itself (early stopping, patience is auxrec's default) the run finishes normally and
  ``training_log.json`` is read instead.
* RecBole: ``benchmarks/recbole_driver.py`` (runs in RecBole's venv, mirrors the peer's
  ``run_one.py``) streams JSON-lines events: ``fit_start``, per-epoch records written from
  ``trainer.fit``'s ``callback_fn`` (after validation and checkpointing), and every few
  seconds the samples/positions trained so far in the current epoch, so throughput is
  measured even when not a single RecBole epoch fits in the budget.

An epoch cut off by the kill contributes no validation point; for RecBole its batches do
count towards positions/s (auxrec's per-epoch log has no intra-epoch counter, so only
completed auxrec epochs count).

Position counting
-----------------
* auxrec: from the trainer's per-epoch log, positions = ``positions_per_second ×
  train_seconds`` (the trainer counts targets that are not padding: SASRec every next-item
  target of the last ``max_length + 1`` items of each user; BERT4Rec the masked items).
* RecBole: counted per batch inside the driver. SASRec: one position per training sample
  (each sample is one prefix -> next item; the number of samples per epoch is the number of
  training interactions minus one per user, ``n_train_samples``). BERT4Rec: the masked
  positions, ``MASK_INDEX > 0``, exactly the weights of its cross-entropy.

Peak memory is the child's ``ru_maxrss`` from ``os.wait4`` (works for killed children too).

Run from the repository root with the auxrec venv, after building RecBole's venv:

    bash ../shared/peers/recbole/setup_env.sh
    .venv/bin/python benchmarks/train_throughput.py --out results.json

See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASETS = ("ml-100k", "ml-1m")
MODELS = ("sasrec", "bert4rec")
TOOLS = ("auxrec", "recbole")
RECBOLE_NAMES = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}
POLL_SEC = 0.5
HIDDEN_DIM = 64
MAX_LENGTH = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default="ml-100k,ml-1m", help="comma-separated: " + ", ".join(DATASETS))
    p.add_argument("--models", default="sasrec,bert4rec", help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--tools", default="auxrec,recbole", help="comma-separated: " + ", ".join(TOOLS))
    p.add_argument("--budget-sec", type=float, default=600.0,
                   help="wall budget per tool and model for training + validation (setup not counted)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/auxrec-bench"),
                   help="prepared data, run folders, RecBole files and child logs")
    p.add_argument("--seed", type=int, default=0, help="seed for both tools")
    p.add_argument("--out", type=Path, default=None, help="JSON results file (default: WORKDIR/results.json)")
    p.add_argument("--batch-size", type=int, default=128, help="auxrec training batch (sequences)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="auxrec learning rate")
    p.add_argument("--patience", type=int, default=None,
                   help="auxrec early-stopping patience in validations (default: the library's); a large value "
                        "lets the budget alone stop training")
    p.add_argument("--device", default="cpu", help="auxrec device: cpu, cuda or auto (RecBole always runs on CPU)")
    p.add_argument("--auxrec-max-epochs", type=int, default=10_000,
                   help="auxrec epoch cap (large: the budget is the real limit)")
    p.add_argument("--recbole-python", type=Path, default=Path("/tmp/recbole-venv/bin/python"),
                   help="python of the RecBole venv (built by ../shared/peers/recbole/setup_env.sh)")
    p.add_argument("--recbole-config", type=Path, default=SHARED / "peers/recbole/common.yaml",
                   help="the peer's shared RecBole settings")
    p.add_argument("--recbole-set", action="append", default=[], metavar="KEY=YAML",
                   help="extra RecBole parameter, e.g. --recbole-set train_batch_size=128 (repeatable)")
    p.add_argument("--shared-data", type=Path, default=SHARED / "data", help="raw MovieLens folders")
    p.add_argument("--setup-timeout-sec", type=float, default=1800.0,
                   help="kill a child that has not started training after this long")
    p.add_argument("--auxrec-child", type=Path, default=None, help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    for name, allowed in (("datasets", DATASETS), ("models", MODELS), ("tools", TOOLS)):
        values = [v.strip() for v in getattr(args, name).split(",") if v.strip()]
        unknown = sorted(set(values) - set(allowed))
        if unknown or not values:
            p.error(f"--{name}: unknown or empty {unknown}; choose from {', '.join(allowed)}")
        setattr(args, name, values)
    args.workdir = args.workdir.resolve()
    args.out = (args.out or args.workdir / "results.json").resolve()
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


def prepare_auxrec_data(dataset: str, args: argparse.Namespace) -> Path:
    """``auxrec prepare DATASET`` into WORKDIR/auxrec-data unless it is already there."""
    out = args.workdir / "auxrec-data" / dataset
    if (out / "manifest.json").is_file():
        return out
    cli = Path(sys.executable).parent / "auxrec"
    command = [str(cli)] if cli.is_file() else [sys.executable, "-m", "auxrec"]
    command += ["prepare", dataset, "--source", str(args.shared_data / dataset), "--out", str(out), "--overwrite"]
    log("auxrec: " + " ".join(command[1:]))
    subprocess.run(command, check=True, stdout=sys.stderr)  # keep stdout for the table
    return out


def prepare_recbole_data(dataset: str, args: argparse.Namespace) -> Path:
    """RecBole atomic files ``DATASET.inter/.item/.user`` in WORKDIR/recbole-data/DATASET."""
    out = args.workdir / "recbole-data" / dataset
    if (out / f"{dataset}.inter").is_file():
        return out
    staging = out.with_name(f".{dataset}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    source = args.shared_data / dataset
    if dataset == "ml-100k":  # already atomic files (byte-identical to RecBole's bundled copy)
        for suffix in ("inter", "item", "user"):
            shutil.copyfile(source / f"ml-100k.{suffix}", staging / f"ml-100k.{suffix}")
    elif dataset == "ml-1m":
        write_ml1m_atomic(source, staging)
    else:  # pragma: no cover - guarded by parse_args
        raise ValueError(dataset)
    os.replace(staging, out)
    return out


def write_ml1m_atomic(source: Path, out: Path) -> None:
    """MovieLens-1M ``::`` files -> RecBole atomic files (the columns RecBole's own ml-1m copy has).

    Ratings keep their file order (RecBole's stable time sort breaks ties by it) and every
    rating counts, as auxrec's ``prepare ml-1m`` does by default.
    """
    ratings = sorted(source.glob("ratings*.dat.gz")) or sorted(source.glob("ratings*.dat"))
    if len(ratings) != 1:
        raise FileNotFoundError(f"expected one ratings*.dat[.gz] in {source}, found {ratings}")
    opener = gzip.open if ratings[0].suffix == ".gz" else open
    with opener(ratings[0], "rt", encoding="latin-1") as src, (out / "ml-1m.inter").open("w") as dst:
        dst.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for line in src:
            if line.strip():
                user, item, rating, timestamp = line.rstrip("\n").split("::")
                dst.write(f"{user}\t{item}\t{rating}\t{timestamp}\n")
    with (source / "movies.dat").open(encoding="latin-1") as src, (out / "ml-1m.item").open("w") as dst:
        dst.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n")
        for line in src:
            if not line.strip():
                continue
            item, title, genres = line.rstrip("\n").split("::")
            year = ""
            if title.endswith(")") and title[-6:-5] == "(" and title[-5:-1].isdigit():
                title, year = title[:-6].strip(), title[-5:-1]
            dst.write(f"{item}\t{title}\t{year}\t{genres.replace('|', ' ')}\n")
    if (source / "users.dat").is_file():
        with (source / "users.dat").open(encoding="latin-1") as src, (out / "ml-1m.user").open("w") as dst:
            dst.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
            for line in src:
                if line.strip():
                    user, gender, age, occupation, zip_code = line.rstrip("\n").split("::")
                    dst.write(f"{user}\t{age}\t{gender}\t{occupation}\t{zip_code}\n")


# ----------------------------------------------------------------------------- children


@dataclass
class Child:
    """A child process in its own process group, reaped with ``os.wait4`` for its rusage."""

    command: list[str]
    log_path: Path
    cwd: Path
    started: float = 0.0
    process: subprocess.Popen | None = None
    returncode: int | None = None
    killed: bool = False
    rusage: Any = None
    ended: float = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as stream:
            self.started = time.time()
            self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=stream, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def poll(self) -> bool:
        """True once the child has exited (and was reaped)."""
        if self.returncode is not None:
            return True
        pid, status, rusage = os.wait4(self.process.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.returncode, self.rusage, self.ended = os.waitstatus_to_exitcode(status), rusage, time.time()
        self.process.returncode = self.returncode  # keep Popen from waiting on a reaped pid
        return True

    def kill(self, grace: float = 15.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
        if self.poll():
            return
        self.killed = True
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.time() + wait
            while time.time() < deadline:
                if self.poll():
                    return
                time.sleep(0.1)

    def resources(self) -> dict[str, Any]:
        if self.rusage is None:
            return {}
        return {"peak_rss_mb": round(self.rusage.ru_maxrss / 1024.0, 1),  # Linux: KiB
                "cpu_user_sec": round(self.rusage.ru_utime, 1), "cpu_sys_sec": round(self.rusage.ru_stime, 1),
                "wall_sec": round(self.ended - self.started, 1), "returncode": self.returncode,
                "killed_at_budget": self.killed}


def supervise(child: Child, fit_start, on_poll, budget: float, setup_timeout: float) -> str:
    """Run ``child`` until it exits or its budget is spent; returns how it ended.

    ``fit_start()`` gives the wall time training began (or None yet), ``on_poll()`` collects
    progress. The deadline is fit start + budget; before training, ``setup_timeout``.
    """
    child.start()
    try:
        while True:
            exited = child.poll()
            started = fit_start()
            on_poll()
            if exited:
                return "finished" if child.returncode == 0 else "failed"
            now = time.time()
            if started is None and now - child.started > setup_timeout:
                child.kill()
                on_poll()
                return "setup_timeout"
            if started is not None and now >= started + budget:
                child.kill()
                on_poll()  # whatever was completely written before the kill
                return "budget"
            time.sleep(POLL_SEC)
    except BaseException:
        child.kill(grace=2.0)
        raise


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ----------------------------------------------------------------------------- auxrec


def auxrec_child_main(spec_path: Path) -> None:
    """Inside the child: record the torch thread count and versions, then ``train_run``."""
    import torch

    from auxrec.experiments.runs import package_versions, train_run

    spec = json.loads(spec_path.read_text())
    Path(spec["info"]).write_text(json.dumps({"torch_threads": torch.get_num_threads(),
                                              "torch_interop_threads": torch.get_num_interop_threads(),
                                              "versions": package_versions()}))
    train_run(spec["model"], Path(spec["data"]), Path(spec["out"]), seed=spec["seed"],
              model_layers=[("bench", spec["model_config"])], training_layers=[("bench", spec["training"])],
              protocols=("sampled",), overwrite=True)


def run_auxrec(dataset: str, model: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    name = f"{dataset}-{model}"
    out = args.workdir / "auxrec-runs" / name
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    model_config = {"hidden_dim": HIDDEN_DIM, "max_length": MAX_LENGTH}
    training = {"epochs": args.auxrec_max_epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "eval_every": 1, "validation_protocol": "sampled", "device": args.device, "progress": False}
    if args.patience is not None:
        training["patience"] = args.patience
    spec = {"model": model, "data": str(data_dir), "out": str(out), "seed": args.seed, "model_config": model_config,
            "training": training, "info": str(args.workdir / "logs" / f"{name}-auxrec.info.json")}
    spec_path = args.workdir / "logs" / f"{name}-auxrec.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2))
    Path(spec["info"]).unlink(missing_ok=True)

    child = Child([sys.executable, str(Path(__file__).resolve()), "--auxrec-child", str(spec_path)],
                  args.workdir / "logs" / f"{name}-auxrec.log", cwd=args.workdir)
    state: dict[str, Any] = {"fit_start": None, "ckpt_mtime": None, "epochs": []}
    versions_file, checkpoint = staging / "versions.json", staging / "checkpoint.pt"

    def fit_start() -> float | None:
        if state["fit_start"] is None and versions_file.is_file():
            state["fit_start"] = versions_file.stat().st_mtime  # written just before model.fit
        return state["fit_start"]

    def on_poll() -> None:
        try:
            mtime = checkpoint.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == state["ckpt_mtime"] or state["fit_start"] is None:
            return
        try:
            epochs = torch.load(checkpoint, map_location="cpu", weights_only=False)["log"]
        except Exception:  # replaced or deleted while reading: try again next poll
            return
        state["ckpt_mtime"] = mtime
        merge_auxrec_epochs(state, epochs, end=mtime - state["fit_start"])

    loadavg = os.getloadavg()
    log(f"auxrec {model} on {dataset}: training for {args.budget_sec:.0f} s (log {child.log_path})")
    ended = supervise(child, fit_start, on_poll, args.budget_sec, args.setup_timeout_sec)
    final_log = out / "training_log.json"
    if ended == "finished" and final_log.is_file():  # stopped by itself: the complete log
        merge_auxrec_epochs(state, json.loads(final_log.read_text())["epochs"], end=None)
    info_path = Path(spec["info"])
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    epochs = [{
        "epoch": e["epoch"],
        "train_seconds": e["train_seconds"],
        "valid_seconds": e.get("valid_seconds"),
        "samples": round(e["sequences_per_second"] * e["train_seconds"]) if e.get("sequences_per_second") else 0,
        # positions/samples are rate × seconds as logged (rounded to 0.1/s and 1 ms: ±0.01 %)
        "positions": round(e["positions_per_second"] * e["train_seconds"]) if e.get("positions_per_second") else 0,
        "valid_ndcg10": e.get("valid_NDCG@10"),
        "loss": e.get("loss"),
        "end_sec": round(e["end_sec"], 3),
        "end_estimated": e["end_estimated"],
        "after_budget": e["end_sec"] > args.budget_sec,
    } for e in state["epochs"]]
    n_sequences = None
    try:
        from auxrec.data.dataset import PreparedDataset
        from auxrec.models import lookup

        model_class, config_class = lookup(model)
        units, _ = model_class(config_class(**model_config), n_users=1, n_items=1).training_units(
            PreparedDataset.load(data_dir))
        n_sequences = int(len(units))
    except Exception as exc:  # only used to estimate an epoch that never finished
        log(f"  (could not count auxrec training sequences: {exc})")
    record = {
        "tool": "auxrec", "dataset": dataset, "model": model, "ended": ended,
        "setup_sec": round(state["fit_start"] - child.started, 1) if state["fit_start"] else None,
        "epochs": epochs, "partial_epoch": None, "samples_per_epoch": n_sequences,
        "sample_unit": "user sequence (all its positions trained at once)",
        "settings": {"model_config": model_config, "training": training,
                     "patience": training.get("patience", patience_default())},
        "run_dir": str(out if out.is_dir() else staging), "log": str(child.log_path),
        "torch_threads": info.get("torch_threads"), "versions": info.get("versions"),
        "loadavg_before": [round(x, 2) for x in loadavg], **child.resources(),
    }
    if ended in ("failed", "setup_timeout"):
        record["error_tail"] = tail(child.log_path)
        log(f"  auxrec {ended}:\n{record['error_tail']}")
    return record


def patience_default() -> int:
    from auxrec.training.config import TrainingConfig

    return TrainingConfig().patience


def merge_auxrec_epochs(state: dict[str, Any], epochs: list[dict[str, Any]], end: float | None) -> None:
    """Add epoch records not seen yet, with their wall time since fit start.

    ``end`` is the wall time the newest record appeared (checkpoint mtime). Epochs that
    appeared together, or only in the final log, get an estimate from the logged train and
    validation seconds (``end_estimated``).
    """
    seen = {e["epoch"] for e in state["epochs"]}
    new = [dict(e) for e in epochs if e["epoch"] not in seen]
    if not new:
        return
    span = [e["train_seconds"] + (e.get("valid_seconds") or 0.0) for e in new]
    if end is not None:  # the newest is exact; walk back for the others
        ends = [end]
        for s in reversed(span[1:]):
            ends.append(ends[-1] - s)
        ends.reverse()
    else:  # after the last observed epoch
        ends, last = [], state["epochs"][-1]["end_sec"] if state["epochs"] else 0.0
        for s in span:
            last += s
            ends.append(last)
    for i, (e, t) in enumerate(zip(new, ends, strict=True)):
        e["end_sec"], e["end_estimated"] = t, not (end is not None and i == len(new) - 1)
    state["epochs"].extend(new)


# ----------------------------------------------------------------------------- RecBole


def run_recbole(dataset: str, model: str, data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = f"{dataset}-{model}"
    progress_path = args.workdir / "logs" / f"{name}-recbole.progress.jsonl"
    progress_path.unlink(missing_ok=True)
    settings = [f"MAX_ITEM_LIST_LENGTH={MAX_LENGTH}", f"hidden_size={HIDDEN_DIM}", "valid_metric=NDCG@10",
                f"seed={args.seed}", f"checkpoint_dir={args.workdir / 'recbole-saved' / name}",
                "show_progress=False", *args.recbole_set]
    command = [str(args.recbole_python), str(REPO / "benchmarks" / "recbole_driver.py"),
               "--model", RECBOLE_NAMES[model], "--dataset", dataset, "--data-dir", str(data_dir),
               "--config", str(args.recbole_config), "--mode", "uni100", "--progress", str(progress_path)]
    for kv in settings:
        command += ["--set", kv]
    # RecBole writes ./log and ./log_tensorboard into its working directory.
    child = Child(command, args.workdir / "logs" / f"{name}-recbole.log", cwd=args.workdir / "recbole-cwd")
    state: dict[str, Any] = {"offset": 0, "events": []}

    def on_poll() -> None:
        try:
            with progress_path.open() as stream:
                stream.seek(state["offset"])
                chunk = stream.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind("\n") + 1]
        state["offset"] += len(complete.encode())
        state["events"].extend(json.loads(line) for line in complete.splitlines() if line.strip())

    def fit_start() -> float | None:
        on_poll()
        return next((e["t"] for e in state["events"] if e["event"] == "fit_start"), None)

    loadavg = os.getloadavg()
    log(f"RecBole {RECBOLE_NAMES[model]} on {dataset}: training for {args.budget_sec:.0f} s (log {child.log_path})")
    ended = supervise(child, fit_start, on_poll, args.budget_sec, args.setup_timeout_sec)
    events = state["events"]
    setup = next((e for e in events if e["event"] == "setup"), {})
    start = fit_start()
    epochs, partial = recbole_progress(events, args.budget_sec)
    done = next((e for e in events if e["event"] == "done"), None)
    record = {
        "tool": "recbole", "dataset": dataset, "model": RECBOLE_NAMES[model], "ended": ended,
        "setup_sec": round(start - child.started, 1) if start else None,
        "epochs": epochs, "partial_epoch": partial,
        "samples_per_epoch": (setup.get("dataset") or {}).get("n_train_samples"),
        "sample_unit": "prefix -> next-item sample",
        "dataset_stats": setup.get("dataset"), "data_prep_sec": setup.get("data_prep_sec"),
        "n_trainable_params": setup.get("n_trainable_params"),
        "settings": {"overrides": settings, "mode": "uni100", "base_config": str(args.recbole_config),
                     "resolved": setup.get("config")},
        "test": done.get("test") if done else None,
        "log": str(child.log_path), "progress_log": str(progress_path),
        "torch_threads": (setup.get("versions") or {}).get("torch_threads"), "versions": setup.get("versions"),
        "loadavg_before": [round(x, 2) for x in loadavg], **child.resources(),
    }
    if ended in ("failed", "setup_timeout"):
        record["error_tail"] = tail(child.log_path)
        log(f"  RecBole {ended}:\n{record['error_tail']}")
    return record


def recbole_progress(events: list[dict[str, Any]], budget: float) -> tuple[list[dict[str, Any]], dict | None]:
    """Completed epochs (1-based, wall time since fit start) and the cut-off epoch's progress."""
    start = next((e["t"] for e in events if e["event"] == "fit_start"), None)
    epochs: list[dict[str, Any]] = []
    for e in events:
        if e["event"] == "epoch":
            result = e.get("valid_result") or {}
            epochs.append({"epoch": e["epoch"] + 1, "train_seconds": round(e["train_seconds"], 3),
                           "valid_seconds": round(e["valid_seconds"], 3) if e.get("valid_seconds") is not None
                           else None,
                           "samples": e["samples"], "positions": e["positions"],
                           "valid_ndcg10": result.get("ndcg@10", e.get("valid_score")), "loss": e.get("loss"),
                           "end_sec": round(e["t"] - start, 3), "end_estimated": False,
                           "after_budget": e["t"] - start > budget})
    partial = None
    done_epochs = {e["epoch"] for e in epochs}
    last_batch = next((e for e in reversed(events) if e["event"] == "batch"), None)
    if last_batch and last_batch["epoch"] + 1 not in done_epochs:
        partial = {"epoch": last_batch["epoch"] + 1, "train_seconds": round(last_batch["train_elapsed"], 3),
                   "batches": last_batch["batches"], "samples": last_batch["samples"],
                   "positions": last_batch["positions"]}
    return epochs, partial


# ----------------------------------------------------------------------------- summary


def summarize(record: dict[str, Any]) -> dict[str, Any]:
    """Throughput, seconds per epoch, best validation point of one tool's record."""
    epochs = record["epochs"]
    parts = [*epochs, *([record["partial_epoch"]] if record.get("partial_epoch") else [])]
    seconds = sum(p["train_seconds"] for p in parts)
    positions = sum(p["positions"] for p in parts)
    samples = sum(p["samples"] for p in parts)
    summary: dict[str, Any] = {
        "epochs_completed": len(epochs),
        "train_seconds_counted": round(seconds, 3),
        "positions_per_sec": round(positions / seconds, 1) if seconds else None,
        "samples_per_sec": round(samples / seconds, 2) if seconds else None,
        "positions_per_epoch": round(sum(e["positions"] for e in epochs) / len(epochs)) if epochs else None,
        "sec_per_epoch": None, "sec_per_epoch_estimated": False,
        "valid_sec_per_round": None, "best_valid_ndcg10": None, "best_epoch": None, "best_at_sec": None,
    }
    if epochs:
        summary["sec_per_epoch"] = round(sum(e["train_seconds"] for e in epochs) / len(epochs), 2)
    elif summary["samples_per_sec"] and record.get("samples_per_epoch"):
        summary["sec_per_epoch"] = round(record["samples_per_epoch"] / summary["samples_per_sec"], 1)
        summary["sec_per_epoch_estimated"] = True  # no epoch finished: extrapolated from the partial one
    valid = [e for e in epochs if e.get("valid_seconds") is not None]
    if valid:
        summary["valid_sec_per_round"] = round(sum(e["valid_seconds"] for e in valid) / len(valid), 2)
    # Quality counts only epochs that ended within the budget (an epoch may end in the
    # fraction of a second between the deadline and the kill; its speed still counts).
    scored = [e for e in epochs if e.get("valid_ndcg10") is not None and not e.get("after_budget")]
    if scored:
        best = max(scored, key=lambda e: e["valid_ndcg10"])  # first epoch among ties
        summary.update(best_valid_ndcg10=best["valid_ndcg10"], best_epoch=best["epoch"], best_at_sec=best["end_sec"])
    return summary


def time_to_reach(record: dict[str, Any], target: float | None) -> float | None:
    """Wall seconds since fit start at the end of the first epoch whose validation NDCG@10 >= target."""
    if target is None:
        return None
    for e in record["epochs"]:
        if e.get("valid_ndcg10") is not None and not e.get("after_budget") and e["valid_ndcg10"] >= target:
            return e["end_sec"]
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b not in (None, 0) else None


def compare(auxrec: dict[str, Any] | None, recbole: dict[str, Any] | None) -> dict[str, Any]:
    if auxrec is None or recbole is None:
        return {}
    a, r = auxrec["summary"], recbole["summary"]
    return {
        "auxrec_reaches_recbole_best_at_sec": time_to_reach(auxrec, r["best_valid_ndcg10"]),
        "recbole_reaches_auxrec_best_at_sec": time_to_reach(recbole, a["best_valid_ndcg10"]),
        "ratios_auxrec_over_recbole": {
            key: ratio(a.get(key) if key in a else auxrec.get(key), r.get(key) if key in r else recbole.get(key))
            for key in ("positions_per_sec", "sec_per_epoch", "valid_sec_per_round", "best_valid_ndcg10",
                        "peak_rss_mb", "setup_sec")
        },
    }


def fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value:,}{suffix}" if isinstance(value, int) else str(value)


COLUMNS = ("tool", "pos/s", "s/epoch (own)", "valid s", "epochs", "best NDCG@10 (ep @ s)",
           "reach other's best", "peak RSS MB", "setup s", "ended")


def table_rows(auxrec: dict[str, Any] | None, recbole: dict[str, Any] | None,
               comparison: dict[str, Any]) -> list[list[str]]:
    rows = []
    reach = {"auxrec": comparison.get("auxrec_reaches_recbole_best_at_sec"),
             "recbole": comparison.get("recbole_reaches_auxrec_best_at_sec")}
    for record in (auxrec, recbole):
        if record is None:
            continue
        s = record["summary"]
        best = "—" if s["best_valid_ndcg10"] is None else \
            f"{s['best_valid_ndcg10']:.4f} ({s['best_epoch']} @ {s['best_at_sec']:.0f})"
        per_epoch = fmt(s["sec_per_epoch"]) + (" est" if s["sec_per_epoch_estimated"] else "")
        other = recbole if record is auxrec else auxrec
        if other is None or other["summary"]["best_valid_ndcg10"] is None:
            reached = "—"
        else:
            reached = fmt(reach[record["tool"]], 0, " s") if reach[record["tool"]] is not None else "not reached"
        epochs = str(s["epochs_completed"]) + (" +part" if record.get("partial_epoch") else "")
        rows.append([record["tool"], fmt(s["positions_per_sec"], 0), per_epoch, fmt(s["valid_sec_per_round"]),
                     epochs, best, reached, fmt(record.get("peak_rss_mb"), 0), fmt(record.get("setup_sec")),
                     record["ended"]])
    if comparison:
        q = comparison["ratios_auxrec_over_recbole"]
        rows.append(["ratio a/r", fmt(q["positions_per_sec"], 2, "×"), fmt(q["sec_per_epoch"], 3, "×"),
                     fmt(q["valid_sec_per_round"], 2, "×"), "", fmt(q["best_valid_ndcg10"], 2, "×"), "",
                     fmt(q["peak_rss_mb"], 2, "×"), fmt(q["setup_sec"], 2, "×"), ""])
    return rows


def print_table(results: dict[str, Any]) -> None:
    print(f"\nbudget: {results['budget_sec']:.0f} s of training + validation per tool and model "
          f"(cpus {results['machine']['cpu_count']}; load avg at start {results['machine']['loadavg_start']})")
    for pair in results["pairs"]:
        runs = {r["tool"]: r for r in results["runs"] if r["dataset"] == pair["dataset"]
                and r["model_key"] == pair["model"]}
        rows = table_rows(runs.get("auxrec"), runs.get("recbole"), pair["comparison"])
        widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(COLUMNS))]
        print(f"\n{pair['dataset']} · {pair['model']}")
        print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for record in runs.values():
            if record["summary"]["positions_per_sec"] is None and record["ended"] == "budget":
                print(f"  note: {record['tool']} did not complete a single training batch within the budget "
                      f"(setup {fmt(record.get('setup_sec'))} s); raise --budget-sec")
    print()


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "cpu_affinity": len(os.sched_getaffinity(0)),
                            "platform": platform.platform(), "python": platform.python_version(),
                            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                            "torch_threads_parent": torch.get_num_threads()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                                 if line.startswith("model name"))
        meminfo = Path("/proc/meminfo").read_text()
        info["mem_total_gb"] = round(int(meminfo.split("MemTotal:")[1].split()[0]) / 2**20, 1)
    except (OSError, StopIteration, IndexError, ValueError):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.auxrec_child is not None:
        auxrec_child_main(args.auxrec_child)
        return 0
    if "recbole" in args.tools and not args.recbole_python.is_file():
        sys.exit(f"error: {args.recbole_python} not found; build RecBole's venv first: "
                 "bash ../shared/peers/recbole/setup_env.sh")
    from auxrec.experiments.runs import package_versions

    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "benchmark": "train_throughput", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "budget_sec": args.budget_sec, "seed": args.seed,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "auxrec_child"},
        "machine": machine_info(), "versions": {"auxrec_env": package_versions(), "recbole_env": None},
        "settings": {"hidden_dim": HIDDEN_DIM, "max_length": MAX_LENGTH, "validation": "uni100 / sampled: "
                     "target + 100 uniform negatives, NDCG@10, every epoch, in both tools"},
        "runs": [], "pairs": [],
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_name(f".{args.out.name}.partial")
        temporary.write_text(json.dumps(results, indent=2, default=str) + "\n")
        os.replace(temporary, args.out)

    for dataset in args.datasets:
        data = {}
        if "auxrec" in args.tools:
            data["auxrec"] = prepare_auxrec_data(dataset, args)
        if "recbole" in args.tools:
            data["recbole"] = prepare_recbole_data(dataset, args)
        for model in args.models:
            records: dict[str, dict[str, Any]] = {}
            for tool in args.tools:
                runner = run_auxrec if tool == "auxrec" else run_recbole
                record = runner(dataset, model, data[tool], args)
                record["model_key"] = model
                record["summary"] = summarize(record)
                if tool == "recbole" and record.get("versions"):
                    results["versions"]["recbole_env"] = record["versions"]
                records[tool] = record
                results["runs"].append(record)
                s = record["summary"]
                log(f"  {tool}: {s['epochs_completed']} epochs, {fmt(s['positions_per_sec'], 0)} positions/s, "
                    f"best valid NDCG@10 {fmt(s['best_valid_ndcg10'], 4)}, peak RSS "
                    f"{fmt(record.get('peak_rss_mb'), 0)} MB ({record['ended']})")
                save()
            results["pairs"].append({"dataset": dataset, "model": model,
                                     "comparison": compare(records.get("auxrec"), records.get("recbole"))})
            save()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    save()
    print_table(results)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
