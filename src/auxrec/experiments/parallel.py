"""Training many independent runs at once: inline, or in a pool of worker processes.

A reproduction is dozens of small trainings. On a CPU, one small transformer uses extra
threads poorly (on ML-100K, SASRec's epoch goes from ~8.5 s on one thread to ~6 s on two),
so ``jobs`` single-purpose processes, each with its share of the cores, finish a batch
of runs sooner than one process using all of them. Each run seeds its own generators, so
the order in which runs finish does not matter; what can matter is the thread count
(floating-point sums are split differently), so every worker uses the same number of
threads, ``cores // jobs``, and a run is repeatable with the same ``--jobs`` on the
same machine.

Workers are started with ``spawn`` (not ``fork``): the parent may already have used
torch's thread pools, which do not survive a fork safely.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import torch

from auxrec.exceptions import ConfigError, ResumeMismatch, RunError
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.runs import train_run


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def train_or_restart(arguments: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """`train_run` with resumption; an interrupted run with other settings starts afresh.

    Returns the run's metrics and its wall time in seconds.
    """
    started = time.perf_counter()
    try:
        metrics = train_run(**arguments, resume=True)
    except ResumeMismatch:
        RunFolder(Path(arguments["out"])).discard_staging()
        metrics = train_run(**arguments, resume=False)
    return metrics, time.perf_counter() - started


def exit_when_orphaned(parent_pid: int, interval: float = 1.0,
                       exit: Callable[[int], object] = os._exit) -> threading.Thread:
    """Watch (in a daemon thread) for the parent's death and then ``exit``.

    A pool worker outlives a parent that is killed (``kill``, the end of a session),
    and would go on training a run whose folder a restarted reproduction resumes at the
    same time: two processes writing one checkpoint. On its parent's death a process is
    re-parented, so its parent pid changes.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        exit(1)

    watcher = threading.Thread(target=watch, name="exit-when-orphaned", daemon=True)
    watcher.start()
    return watcher


def _init_worker(threads: int, parent_pid: int) -> None:
    torch.set_num_threads(threads)
    exit_when_orphaned(parent_pid)


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """Spawned processes with ``threads`` torch threads each, that exit if this process dies."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))


class Executor(Protocol):
    """Trains a batch of runs: this module's `RunExecutor`, or `auxrec.experiments.ray_executor.RayExecutor`."""

    @property
    def description(self) -> str: ...

    def run(self, tasks: Sequence[dict[str, Any]],
            on_done: Callable[[int, dict[str, Any], float], None]) -> None: ...


class RunExecutor:
    """Runs `train_or_restart` tasks, ``jobs`` at a time; ``jobs=1`` trains inline."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
        self.jobs = jobs
        self.threads = max(1, available_cores() // self.jobs)

    @property
    def description(self) -> str:
        return f"{self.jobs} at a time"

    def run(self, tasks: Sequence[dict[str, Any]], on_done: Callable[[int, dict[str, Any], float], None]) -> None:
        """Train every task; ``on_done(index, metrics, seconds)`` is called as each finishes.

        The first failure stops the pool (pending tasks are cancelled; finished runs stay
        on disk and are reused next time) and is raised.
        """
        if self.jobs == 1 or len(tasks) <= 1:
            for index, arguments in enumerate(tasks):
                on_done(index, *train_or_restart(arguments))
            return
        with worker_pool(min(self.jobs, len(tasks)), self.threads) as pool:
            pending: dict[Future[tuple[dict[str, Any], float]], int] = {
                pool.submit(train_or_restart, arguments): index for index, arguments in enumerate(tasks)
            }
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_done(pending.pop(future), *future.result())
            except BrokenProcessPool as error:
                # A worker killed from outside (the out-of-memory killer, `kill`) is not a
                # bug to show as a traceback; what the user needs is what happened and that
                # rerunning continues.
                raise RunError("a training worker process died (killed by the system, e.g. for lack of memory, "
                               "or from outside); finished runs are kept and unfinished ones resume from their "
                               "last epoch when you run the same command again"
                               + (f" (perhaps with fewer --jobs than {self.jobs})" if self.jobs > 1 else "")) from error
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
