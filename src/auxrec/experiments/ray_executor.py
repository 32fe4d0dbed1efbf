"""Training a reproduction's runs as Ray tasks: on a running Ray cluster, or on a local one.

`RunExecutor` (a process pool) suits one machine; beyond it, each (model, variant, seed)
run is one Ray task with the CPUs and GPUs it asks for, placed by Ray's scheduler. Nothing
else changes: the reproduction decides which runs to reuse before anything is submitted,
each task is `train_or_restart` (so an interrupted run resumes from its checkpoint), and
the reports are rendered from the run folders as always.

A task reads the prepared data and writes its run folder at the paths the reproduction
gives, so on a cluster of several machines the work folder must be on storage every node
mounts at the same path (NFS, a cluster file system), and auxrec must be installed in the
nodes' Python (or shipped with Ray's ``runtime_env``). Ray is an optional dependency:
``pip install 'auxrec[cluster]'``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from auxrec.exceptions import ConfigError, RunError
from auxrec.experiments.parallel import train_or_restart

PATH_ARGUMENTS = ("data", "out")  # absolute before they travel: a worker's working directory is its own


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'auxrec[cluster]' (or pip install ray)") from None


def _absolute(arguments: dict[str, Any]) -> dict[str, Any]:
    moved = {key: Path(value).resolve() if key in PATH_ARGUMENTS else value for key, value in arguments.items()}
    if moved.get("feature_files"):
        moved["feature_files"] = {name: Path(path).resolve() for name, path in moved["feature_files"].items()}
    return moved


def _train_task(arguments: dict[str, Any], threads: int) -> tuple[dict[str, Any], float]:
    """One run inside a Ray worker, with as many torch threads as CPUs it was given."""
    torch.set_num_threads(threads)
    return train_or_restart(arguments)


@dataclass
class RayExecutor:
    """Runs `train_or_restart` tasks on Ray: ``address`` names a running cluster ("auto", "ray://host:10001");
    None joins the one ``RAY_ADDRESS`` names, or starts a local instance for the duration of `run`."""

    address: str | None = None
    cpus_per_run: int = 1
    gpus_per_run: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be at least 1 (got {self.cpus_per_run})")
        if self.gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must not be negative (got {self.gpus_per_run})")
        self.ray = _import_ray()

    @property
    def description(self) -> str:
        where = self.address or "a local Ray instance"
        gpus = f", {self.gpus_per_run:g} GPU" if self.gpus_per_run else ""
        return f"Ray tasks on {where} ({self.cpus_per_run} CPU{gpus} each)"

    def run(self, tasks: Sequence[dict[str, Any]], on_done: Callable[[int, dict[str, Any], float], None]) -> None:
        """Submit every task; ``on_done(index, metrics, seconds)`` as each finishes (in finishing order).

        The first failure cancels the tasks not yet finished (finished runs stay on disk
        and are reused next time) and is raised.
        """
        if not tasks:
            return
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(_train_task)
            pending = {remote.remote(_absolute(arguments), self.cpus_per_run): index
                       for index, arguments in enumerate(tasks)}
            try:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for reference in done:
                        index = pending.pop(reference)
                        on_done(index, *self._result(reference))
            except BaseException:
                for reference in pending:
                    ray.cancel(reference, force=True)
                raise
        finally:
            if started_here:
                ray.shutdown()

    def _result(self, reference: Any) -> tuple[dict[str, Any], float]:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(reference)
        except exceptions.RayTaskError as error:
            # The run's own error (a user mistake raises ConfigError/RunError there): re-raise
            # it as itself, so it reads as it would without Ray.
            cause = error.as_instanceof_cause()
            raise cause from None
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError) as error:
            raise RunError("a Ray worker running a training task died (killed for lack of memory, or its node "
                           "left the cluster); finished runs are kept and unfinished ones resume from their last "
                           "epoch when you run the same command again") from error
