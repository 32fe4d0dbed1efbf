#!/usr/bin/env python
"""Wall time and peak memory of every stage from raw data to a `full` evaluation, at scale.

benchmarks/README.md, "Scale". For a synthetic preset (``ml20m``: MovieLens-20M's shape;
``catalog1m``: a shop with ~1M items) the stages run one after another, each in its own
child process, so that each one's peak resident memory is its own (the rusage `os.wait4`
returns for that child):

``generate``  `auxrec generate --preset P`, always with this checkout's code: every code
              version must be measured on the same data, and older code may lack the preset;
``prepare``   `auxrec prepare synthetic`;
``embed``     the basic item encoders (`basic_item_features`) of ``--modalities``: `auxrec
              embed` runs only the pretrained ones, and `train --aux` computes the basic ones
              inside the training process (so they are in the SASRec+ stage's memory too);
``sasrec``    one epoch of SASRec through the trainer's own `train_one_epoch`, or its first
              ``--max-steps`` batches: the epoch's time is then extrapolated from their mean
              (and labelled so), the setup (loading, building the model) counted once;
``sasrec+``   the same with the basic features (``--aux``, as `auxrec train --aux` does);
``evaluate``  `full` evaluation (every item, history excluded) of every test user of the
              SASRec+ model, ``--item-chunk`` items at a time (`evaluate(..., item_chunk=...)`).

The training and evaluation stages are drivers (this file with ``--child``), because the
CLI can bound neither an epoch to N steps nor the evaluation's item chunk, and its `train`
also validates and evaluates under two protocols. The code under test is ``--pythonpath``
(default: this checkout's ``src``); the parent never imports auxrec, each child does.

A stage that fails (error, killed) is recorded with its peak memory and last output lines,
and the stages that need its output are skipped: what breaks first is a result. On a
shared machine an overrun must kill the measurement, not a neighbour: a watchdog samples
the child's RSS every 0.2 s and kills it above ``--memory-limit-gib`` or when the machine's
available memory falls below ``--min-available-gib``, and each child asks the kernel's OOM
killer to pick it first (``oom_score_adj`` 1000).

Run from the repository root, nothing else big running (stages are sequential):

    .venv/bin/python benchmarks/scale.py --preset ml20m --label after --max-steps 200
    .venv/bin/python benchmarks/scale.py --preset ml20m --label before --pythonpath ../before/src \\
        --max-steps 200
    .venv/bin/python benchmarks/scale.py --preset catalog1m --label before --pythonpath ../before/src \\
        --loss sampled --max-steps 200 --eval-users 20000
    .venv/bin/python benchmarks/scale.py --preset catalog1m --label before --pythonpath ../before/src \\
        --loss ce --max-steps 3 --stages sasrec --append

(the last one last: a training stage that finishes replaces the work folder's model, which
the evaluate stage reads).

JSON: ``{"runs": [report, ...]}`` in ``--out`` (default benchmarks/results/scale-PRESET-LABEL.json),
each report with the commands, settings, versions, machine and per-stage results.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STAGES = ("generate", "prepare", "embed", "sasrec", "sasrec+", "evaluate")
NEEDS = {"prepare": "raw", "embed": "prepared", "sasrec": "prepared", "sasrec+": "prepared",
         "evaluate": "sasrec+ model"}
RESULT_PREFIX = "SCALE-RESULT "
GIB = 2**30
# MovieLens sequences are long (the paper's 200); shop sequences short (docs/models.md: ~50).
MAX_LENGTH = {"ml20m": 200}
SHORT_MAX_LENGTH = 50
SAMPLE_SECONDS = 0.2


# -- where a run keeps its files -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkFolder:
    path: Path

    @property
    def raw(self) -> Path:
        return self.path / "raw"

    @property
    def prepared(self) -> Path:
        return self.path / "prepared"

    def model(self, stage: str) -> Path:
        return self.path / "models" / stage

    def log(self, stage: str) -> Path:
        return self.path / "logs" / f"{stage}.log"

    def has(self, need: str) -> bool:
        """Whether the output a later stage reads is there (from this run or an earlier one)."""
        found = {"raw": self.raw / "auxrec-source.json", "prepared": self.prepared / "manifest.json",
                 "sasrec+ model": self.model("sasrec+") / "model.json"}[need]
        return found.is_file()


# -- one stage's outcome -------------------------------------------------------------------------------------
@dataclass
class StageResult:
    stage: str
    status: str  # ok | failed | killed | skipped
    command: list[str]
    wall_seconds: float | None = None
    peak_rss_bytes: int | None = None  # the child's ru_maxrss (its own and its waited-for children's)
    returncode: int | None = None
    reason: str = ""  # why it failed, was killed or skipped
    details: dict[str, Any] = field(default_factory=dict)  # the child driver's own report
    output_tail: list[str] = field(default_factory=list)
    min_available_bytes: int | None = None  # the machine's MemAvailable, lowest during the stage
    load_average_start: tuple[float, float, float] | None = None
    load_average_end: tuple[float, float, float] | None = None


@dataclass
class Watch:
    """What the watchdog saw of one child; ``kill_reason`` is set when it killed it."""

    max_rss_bytes: int = 0
    min_available_bytes: int | None = None
    kill_reason: str = ""


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")


def rss_bytes(pid: int) -> int | None:
    """The process's current RSS, None once it has exited (a zombie has no VmRSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def watch_child(pidfd: int, pid: int, limits: argparse.Namespace, done: threading.Event,
                watch: Watch) -> None:
    """Sample the child until ``done``; kill it (through its pidfd: never a reused pid) past a limit."""
    started = time.monotonic()
    while not done.wait(SAMPLE_SECONDS):
        rss, available = rss_bytes(pid), available_bytes()
        watch.max_rss_bytes = max(watch.max_rss_bytes, rss or 0)
        watch.min_available_bytes = min(available, watch.min_available_bytes or available)
        if watch.kill_reason or rss is None:
            continue
        if rss > limits.memory_limit_gib * GIB:
            watch.kill_reason = f"RSS {rss / GIB:.1f} GiB above --memory-limit-gib {limits.memory_limit_gib}"
        elif available < limits.min_available_gib * GIB:
            watch.kill_reason = (f"machine's available memory {available / GIB:.1f} GiB below "
                                 f"--min-available-gib {limits.min_available_gib} "
                                 f"(child RSS {rss / GIB:.1f} GiB)")
        elif limits.stage_timeout_min and time.monotonic() - started > 60 * limits.stage_timeout_min:
            watch.kill_reason = f"ran past --stage-timeout-min {limits.stage_timeout_min}"
        if watch.kill_reason:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def volunteer_for_oom_killer() -> None:
    """In the child before exec: if memory runs out, the kernel kills this measurement first."""
    Path("/proc/self/oom_score_adj").write_text("1000")


def run_stage(stage: str, command: list[str], env: dict[str, str], log: Path,
              limits: argparse.Namespace) -> StageResult:
    """Run one child to its end; its wall time, peak RSS (`os.wait4`) and what it reported."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = StageResult(stage, "ok", command, load_average_start=os.getloadavg())
    watch, done = Watch(), threading.Event()
    with log.open("w") as output:
        started = time.perf_counter()
        # preexec_fn is safe here: no other thread runs (the previous stage's watchdog was joined)
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   preexec_fn=volunteer_for_oom_killer)  # noqa: PLW1509
        pidfd = os.pidfd_open(process.pid)
        watchdog = threading.Thread(target=watch_child, args=(pidfd, process.pid, limits, done, watch))
        watchdog.start()
        # wait4, not Popen.wait: only wait4 gives this one child's rusage (RUSAGE_CHILDREN is a running max)
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        watchdog.join()
        os.close(pidfd)
        result.wall_seconds = time.perf_counter() - started
    process.returncode = result.returncode = os.waitstatus_to_exitcode(status)
    result.peak_rss_bytes = max(usage.ru_maxrss * 1024, watch.max_rss_bytes)  # ru_maxrss is in KiB
    result.min_available_bytes, result.load_average_end = watch.min_available_bytes, os.getloadavg()
    lines = log.read_text(errors="replace").splitlines()
    reports = [line[len(RESULT_PREFIX):] for line in lines if line.startswith(RESULT_PREFIX)]
    result.details = json.loads(reports[-1]) if reports else {}
    result.output_tail = [line[-300:] for line in lines if not line.startswith(RESULT_PREFIX)][-15:]
    if watch.kill_reason:
        result.status, result.reason = "killed", f"killed by the watchdog: {watch.kill_reason}"
    elif result.returncode == -signal.SIGKILL:
        result.status, result.reason = "killed", "SIGKILL from outside (the kernel's OOM killer?)"
    elif result.returncode < 0:
        result.status, result.reason = "killed", f"{signal.Signals(-result.returncode).name} from outside"
    elif result.returncode != 0:
        last = result.output_tail[-1] if result.output_tail else ""
        result.status, result.reason = "failed", f"exit {result.returncode}: {last}"
    return result


# -- the commands --------------------------------------------------------------------------------------------
def child_environment(pythonpath: Path, threads: int) -> dict[str, str]:
    """The code under test first on the path; every thread pool (torch, BLAS, Arrow) at ``threads``."""
    env = dict(os.environ, PYTHONPATH=str(pythonpath), TQDM_DISABLE="1")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)  # Arrow's CPU pool follows OMP_NUM_THREADS too
    return env


def driver(name: str, args: argparse.Namespace, work: WorkFolder, *options: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", name, "--data", str(work.prepared),
            "--threads", str(args.threads), "--seed", str(args.seed), *options]


def stage_command(stage: str, args: argparse.Namespace, work: WorkFolder) -> list[str]:
    auxrec = [sys.executable, "-m", "auxrec"]
    training = ["--max-length", str(args.max_length), "--loss", args.loss,
                "--n-negatives", str(args.n_negatives), "--max-steps", str(args.max_steps)]
    commands = {
        "generate": [*auxrec, "generate", "--preset", args.preset, "--seed", str(args.seed),
                     "--out", str(work.raw)],
        "prepare": [*auxrec, "prepare", "synthetic", "--source", str(work.raw), "--out", str(work.prepared),
                    "--overwrite"],
        "embed": driver("embed", args, work, "--modalities", args.modalities),
        "sasrec": driver("train", args, work, *training, "--model-dir", str(work.model("sasrec"))),
        "sasrec+": driver("train", args, work, *training, "--aux", args.modalities,
                          "--model-dir", str(work.model("sasrec+"))),
        "evaluate": driver("evaluate", args, work, "--model-dir", str(work.model("sasrec+")),
                           "--item-chunk", str(args.item_chunk), "--eval-users", str(args.eval_users)),
    }
    return commands[stage]


def run_stages(args: argparse.Namespace, work: WorkFolder) -> list[StageResult]:
    results = []
    for stage in args.stages:
        command = stage_command(stage, args, work)
        need = NEEDS.get(stage)
        if need and not work.has(need):
            reason = f"no {need} (an earlier stage failed)"
            results.append(StageResult(stage, "skipped", command, reason=reason))
            print_row(results[-1])
            continue
        wait_for_memory(args.wait_for_gib)
        if stage == "generate" and work.raw.exists():
            shutil.rmtree(work.raw)  # `auxrec generate` writes a new folder; this one is ours
        code = REPO / "src" if stage == "generate" else args.pythonpath
        environment = child_environment(code, args.threads)
        results.append(run_stage(stage, command, environment, work.log(stage), args))
        print_row(results[-1])
    return results


def wait_for_memory(gib: float) -> None:
    """Start a stage only when ``gib`` GiB are available: another engineer's job may be running."""
    while available_bytes() < gib * GIB:
        print(f"  (waiting: {available_bytes() / GIB:.1f} GiB available, want {gib})", flush=True)
        time.sleep(30)


# -- the report ----------------------------------------------------------------------------------------------
def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def note(result: StageResult) -> str:
    """One line of what the stage did (sizes, steps, extrapolation) or why it did not finish."""
    d = result.details
    if result.status != "ok":
        return result.reason
    if result.stage == "embed":
        return f"{d['n_items']:,} items, dims {d['dims']}, {d['feature_bytes'] / GIB:.2f} GiB of features"
    if result.stage in ("sasrec", "sasrec+"):
        text = (f"{d['steps']} of {d['steps_per_epoch']:,} steps, {d['seconds_per_step']:.2f} s/step, "
                f"{d['positions_per_second']:,.0f} positions/s; setup {minutes(d['setup_seconds'])}")
        if d["steps"] < d["steps_per_epoch"]:
            text += f"; epoch extrapolated: {minutes(d['extrapolated_epoch_seconds'])}"
        return text
    if result.stage == "evaluate":
        text = (f"{d['users']:,} users × {d['n_items']:,} items in {minutes(d['evaluate_seconds'])} "
                f"(chunk {d['item_chunk']:,}); NDCG@10 {d['metrics']['NDCG@10']:.4f}")
        if d["users"] < d["all_users"]:
            text += (f"; all {d['all_users']:,} users extrapolated: "
                     f"{minutes(d['extrapolated_all_users_seconds'])}")
        return text
    return ""


def print_row(result: StageResult) -> None:
    peak = f"{result.peak_rss_bytes / GIB:.2f} GiB" if result.peak_rss_bytes is not None else "–"
    print(f"| {result.stage} | {result.status} | {minutes(result.wall_seconds)} | {peak} | {note(result)} |",
          flush=True)


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory_total_bytes": total,
            "platform": platform.platform(), "python": platform.python_version()}


def code_versions(args: argparse.Namespace) -> dict[str, Any]:
    """auxrec (where it was imported from) and the packages the children run with."""
    script = ("import json, auxrec, numpy, pandas, pyarrow, torch; print(json.dumps({"
              "'auxrec': auxrec.__version__, 'auxrec_path': auxrec.__file__, 'torch': torch.__version__, "
              "'numpy': numpy.__version__, 'pandas': pandas.__version__, 'pyarrow': pyarrow.__version__}))")
    environment = child_environment(args.pythonpath, args.threads)
    output = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            check=True).stdout
    return dict(json.loads(output))


# -- the child drivers (they import the code under test) -----------------------------------------------------
def peak_rss_so_far() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def report(values: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(values), flush=True)


def child_embed(args: argparse.Namespace) -> None:
    from auxrec.data.dataset import PreparedDataset
    from auxrec.features.basic import basic_item_features

    started = time.perf_counter()
    dataset = PreparedDataset.load(args.data)
    loaded = time.perf_counter()
    features = basic_item_features(dataset, args.modalities.split(","))
    report({"n_items": dataset.n_items, "dims": features.dims(), "load_seconds": loaded - started,
            "encode_seconds": time.perf_counter() - loaded,
            "feature_bytes": sum(int(matrix.nbytes) for matrix in features.matrices.values()),
            "peak_rss_bytes": peak_rss_so_far()})


@contextlib.contextmanager
def first_batches_only(max_steps: int) -> Iterator[None]:
    """Bound `train_one_epoch` to its first ``max_steps`` batches (0: the whole epoch).

    The trainer's own loop runs unchanged (whatever optimisations the code under test has);
    only the batch generator it calls is cut short.
    """
    from auxrec.training import trainer

    original = trainer.epoch_batches
    if max_steps:
        trainer.epoch_batches = lambda *a, **k: itertools.islice(original(*a, **k), max_steps)
    try:
        yield
    finally:
        trainer.epoch_batches = original


def child_train(args: argparse.Namespace) -> None:
    """SASRec (SASRec+ with ``--aux``) built and trained for one (bounded) epoch as `auxrec train` does."""
    import numpy as np
    import torch

    from auxrec.config import resolve_config
    from auxrec.data.dataset import PreparedDataset
    from auxrec.experiments.runs import build_model, resolve_training, seeded
    from auxrec.models import lookup
    from auxrec.training.trainer import train_one_epoch

    torch.set_num_threads(args.threads)
    try:  # as `train_neural_model` does on CPU, in code that has it
        from auxrec.training.allocator import keep_freed_memory
        keep_freed_memory()
    except ImportError:
        pass
    peaks, started = {}, time.perf_counter()
    dataset = PreparedDataset.load(args.data)
    peaks["load"] = peak_rss_so_far()
    settings: dict[str, Any] = {"max_length": args.max_length, "loss": args.loss}
    if args.loss == "sampled":
        settings["n_negatives"] = args.n_negatives
    model_config, _ = resolve_config(lookup("sasrec")[1], [("benchmark", settings)])
    one_epoch = {"epochs": 1, "device": "cpu", "progress": False}
    training, _ = resolve_training("sasrec", [("benchmark", one_epoch)])
    aux = tuple(args.aux.split(",")) if args.aux else ()
    with seeded(args.seed):
        model, _ = build_model("sasrec", model_config, dataset, aux)
    model.prepare_training(dataset)
    optimizer = torch.optim.AdamW(model.parameter_groups(training.weight_decay), lr=training.learning_rate,
                                  weight_decay=training.weight_decay)
    rng = np.random.default_rng([args.seed, 1])  # the trainer's stream
    peaks["build"] = peak_rss_so_far()
    setup_seconds = time.perf_counter() - started
    steps_per_epoch = math.ceil(len(model.training_units(dataset)[0]) / training.batch_size)
    steps = min(args.max_steps, steps_per_epoch) if args.max_steps else steps_per_epoch
    with seeded(args.seed), first_batches_only(args.max_steps):  # the dropout stream, as in `train_run`
        record = train_one_epoch(model, dataset, training, 1, optimizer, rng, torch.device("cpu"))
    peaks["train"] = peak_rss_so_far()
    model.save(args.model_dir)
    seconds = float(record["train_seconds"])
    report({"steps": steps, "steps_per_epoch": steps_per_epoch, "batch_size": training.batch_size,
            "train_seconds": seconds, "seconds_per_step": seconds / steps,
            "extrapolated_epoch_seconds": seconds / steps * steps_per_epoch,
            "positions_per_second": record["positions_per_second"], "loss": record["loss"],
            "setup_seconds": setup_seconds, "n_items": dataset.n_items, "n_users": dataset.n_users,
            "parameters": sum(p.numel() for p in model.parameters()), "peak_rss_bytes_after": peaks,
            "model_config": asdict(model_config)})


def child_evaluate(args: argparse.Namespace) -> None:
    """`full` test evaluation of the saved model, ``--item-chunk`` items at a time."""
    from auxrec.data.dataset import PreparedDataset
    from auxrec.evaluation.evaluator import evaluate
    from auxrec.models import lookup

    started = time.perf_counter()
    name = json.loads((args.model_dir / "model.json").read_text())["name"]
    model = lookup(name)[0].load(args.model_dir)
    dataset = PreparedDataset.load(args.data)
    all_users = len(dataset.targets("test")[0])
    if args.eval_users:
        everyone = dataset.targets
        # A bound for a long evaluation: the first N test users, the time for all extrapolated.
        dataset.targets = lambda split: tuple(part[:args.eval_users] for part in everyone(split))  # type: ignore
    loaded = time.perf_counter()
    result = evaluate(model, dataset, "test", "full", args.seed, item_chunk=args.item_chunk)
    seconds = time.perf_counter() - loaded
    report({"users": len(result.users), "all_users": all_users, "n_items": dataset.n_items,
            "item_chunk": args.item_chunk, "load_seconds": loaded - started, "evaluate_seconds": seconds,
            "users_per_second": len(result.users) / seconds,
            "extrapolated_all_users_seconds": seconds / len(result.users) * all_users,
            "metrics": result.metrics, "peak_rss_bytes": peak_rss_so_far()})


CHILDREN = {"embed": child_embed, "train": child_train, "evaluate": child_evaluate}


# -- main ----------------------------------------------------------------------------------------------------
def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ml20m", help="synthetic preset: ml20m, catalog1m, ...")
    parser.add_argument("--label", default="after",
                        help="names the code version in the output: before, after")
    parser.add_argument("--pythonpath", type=Path, default=REPO / "src",
                        help="the code under test: a checkout's src folder (e.g. a frozen copy's)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated, from " + ", ".join(STAGES))
    parser.add_argument("--work", type=Path,
                        help="data, models and logs (default /tmp/auxrec-scale/PRESET-LABEL)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, help="SASRec max_length (default 200 for ml20m, else 50)")
    parser.add_argument("--loss", default="ce", choices=("ce", "sampled"), help="SASRec's training loss")
    parser.add_argument("--n-negatives", type=int, default=1000,
                        help="items sampled per batch with --loss sampled")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="train only this many steps and extrapolate the epoch (0: the whole epoch)")
    parser.add_argument("--modalities", default="text,tabular",
                        help="basic encoders for embed and SASRec+ (the presets have no images)")
    parser.add_argument("--item-chunk", type=int, default=65_536, help="items scored at once in evaluation")
    parser.add_argument("--eval-users", type=int, default=0,
                        help="evaluate the first N test users only, extrapolate to all (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit-gib", type=float, default=21.0,
                        help="kill a stage whose RSS passes this")
    parser.add_argument("--min-available-gib", type=float, default=1.0,
                        help="kill a stage when the machine's available memory falls below this")
    parser.add_argument("--wait-for-gib", type=float, default=12.0,
                        help="start a stage only when this much memory is available")
    parser.add_argument("--stage-timeout-min", type=float, default=0,
                        help="kill a stage after this long (0: never)")
    parser.add_argument("--out", type=Path, help="JSON (default benchmarks/results/scale-PRESET-LABEL.json)")
    parser.add_argument("--append", action="store_true",
                        help="add this run to --out's runs instead of replacing them")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--aux", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.stages = [stage for stage in args.stages.split(",") if stage]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    args.max_length = args.max_length or MAX_LENGTH.get(args.preset, SHORT_MAX_LENGTH)
    args.pythonpath = args.pythonpath.resolve()
    args.work = args.work or Path("/tmp/auxrec-scale") / f"{args.preset}-{args.label}"
    args.out = args.out or REPO / "benchmarks" / "results" / f"scale-{args.preset}-{args.label}.json"
    return args


def main() -> None:
    args = parse_arguments()
    if args.child:
        CHILDREN[args.child](args)
        return
    work = WorkFolder(args.work)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
                if key not in ("child", "data", "model_dir", "aux", "append")}
    run: dict[str, Any] = {"command": " ".join(sys.argv), "settings": settings, "machine": machine(),
                           "versions": code_versions(args), "load_average_at_start": os.getloadavg(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"{args.preset}, code {args.label} ({run['versions']['auxrec_path']}), {args.threads} threads, "
          f"max_length {args.max_length}, loss {args.loss}, max steps {args.max_steps or 'epoch'}")
    print("| stage | status | wall | peak RSS | notes |\n|---|---|---|---|---|", flush=True)
    results = run_stages(args, work)
    run["stages"] = [asdict(result) for result in results]
    run["load_average_at_end"] = os.getloadavg()
    runs = json.loads(args.out.read_text())["runs"] if args.append and args.out.is_file() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": [*runs, run]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
