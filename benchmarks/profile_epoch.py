#!/usr/bin/env python
"""Where a SASRec training step's time goes on CPU (ML-100K, max_length 200, batch 128).

benchmarks/README.md, "Where an epoch's time goes". Three parts, one command:

``--threads``: builds SASRec through the library's own code (`resolve_config`, `build_model`
under `seeded`, the trainer's AdamW and `epoch_batches`), times ``--steps`` training steps
without the profiler (positions/s, GFLOP/s), then runs as many more under torch.profiler and
attributes every operator's self time to a part of the model:

* forward operators: the innermost ``record_function`` label around them. The labels are
  added *here only*, by wrapping the ``forward`` of this one model instance's modules (the
  library is unchanged);
* backward operators: the label of the forward operator that created their autograd node
  (the ``sequence_nr`` the profiler records on both sides);
* the step's phases (batch building, forward + loss, backward, optimizer) are labelled
  around the trainer's own calls.

``--ab sdpa,library``: the same steps for two implementations of the attention (`VARIANTS`),
alternated step by step in one process (A B B A ...), the median seconds per step of each,
their ratio, and whether both give bit-identical losses and weights from the same seed.

``--ab-malloc``: glibc's default allocator settings against `keep_freed_memory`, in
alternated child processes (the setting is per process), with page faults and system time.

FLOPs: the matmul work the kernels execute per step (attention projections, the full L × L
attention scores and weighted sums, feed-forward, output layer; backward = 2 × forward) and
the part of it on real positions (no padding, causal half only), divided by the unprofiled
step time, against the CPU's peak (`cpu_peak`).

Run from the repository root; the machine may be shared, so compare ratios measured back to back:

    .venv/bin/python benchmarks/profile_epoch.py --steps 30 --threads 2,1 --ab sdpa,library --ab-malloc \\
        --out benchmarks/results/profile_epoch-ml-100k.json
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from auxrec.config import resolve_config
from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.experiments.runs import build_model, resolve_training, seeded
from auxrec.models import lookup
from auxrec.training.allocator import keep_freed_memory
from auxrec.training.trainer import epoch_batches

REPO = Path(__file__).resolve().parents[1]
MODEL = "sasrec"
PHASE, COMPONENT = "phase: ", "component: "
Batch = dict[str, torch.Tensor]


# -- the model and its batches, as the trainer builds them ------------------------------------------------
def prepared_data(path: Path, source: Path) -> PreparedDataset:
    if not (path / "manifest.json").is_file():
        auxrec = str(Path(sys.executable).with_name("auxrec"))
        command = [auxrec, "prepare", "ml-100k", "--source", str(source), "--out", str(path)]
        subprocess.run(command, check=True)
    return PreparedDataset.load(path)


def build(dataset: PreparedDataset, max_length: int, seed: int) -> tuple[Any, torch.optim.Optimizer, Any]:
    """SASRec with the library defaults but ``max_length``; AdamW exactly as `train_neural_model` makes it."""
    _, config_class = lookup(MODEL)
    model_config, _ = resolve_config(config_class, [("benchmark", {"max_length": max_length})])
    training, _ = resolve_training(MODEL, [])
    with seeded(seed):
        model, _ = build_model(MODEL, model_config, dataset)
    model.prepare_training(dataset)
    optimizer = torch.optim.AdamW(model.parameter_groups(training.weight_decay), lr=training.learning_rate,
                                  weight_decay=training.weight_decay)
    return model, optimizer, training


def batch_stream(model: Any, dataset: PreparedDataset, training: Any, seed: int) -> Iterator[Batch]:
    """The trainer's batches, epoch after epoch (ML-100K has only 8 batches of 128 users per epoch)."""
    rng = np.random.default_rng([seed, 1])  # the trainer's stream
    while True:
        yield from epoch_batches(model, dataset, training.batch_size, rng, training.length_bucketing)


def train_step(model: Any, optimizer: torch.optim.Optimizer, batches: Iterator[Batch]) -> tuple[float, Batch]:
    """One step of `train_one_epoch` on CPU (one process, no autocast), its phases labelled."""
    with record_function(PHASE + "batch building"):
        batch = next(batches)
    with record_function(PHASE + "zero_grad"):
        optimizer.zero_grad(set_to_none=True)
    with record_function(PHASE + "forward + loss"):
        loss = model.loss(batch)
    with record_function(PHASE + "backward"):
        loss.backward()
    value = float(loss.detach())
    with record_function(PHASE + "optimizer"):
        optimizer.step()
    return value, batch


def timed_steps(model: Any, optimizer: torch.optim.Optimizer, batches: Iterator[Batch], steps: int
                ) -> tuple[list[float], list[float], list[Batch]]:
    seconds, losses, seen = [], [], []
    for _ in range(steps):
        started = time.perf_counter()
        loss, batch = train_step(model, optimizer, batches)
        seconds.append(time.perf_counter() - started)
        losses.append(loss)
        seen.append(batch)
    return seconds, losses, seen


# -- component labels (this model instance only) ------------------------------------------------------------
def labelled(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with record_function(COMPONENT + label):
            return function(*args, **kwargs)
    return run


def add_labels(model: Any) -> None:
    """Wrap the forward of each part; an operator belongs to the innermost label around it."""
    dropout = "dropout (input, residual, FFN)"
    model.loss = labelled(model.loss, "output layer + cross-entropy")  # what `encode` below leaves of it
    model.encode = labelled(model.encode, "encoder glue (masks, padding multiplies)")
    model.embed = labelled(model.embed, "embedding (item + position)")
    model.input_dropout.forward = labelled(model.input_dropout.forward, dropout)
    model.final_norm.forward = labelled(model.final_norm.forward, "layer norm")
    for block in model.blocks:
        block.forward = labelled(block.forward, "residual adds")
        core = "attention core (scores, softmax, dropout)"
        block.attention.forward = labelled(block.attention.forward, core)
        for linear in (block.attention.qkv, block.attention.out):
            linear.forward = labelled(linear.forward, "attention projections (qkv, out)")
        for norm in (block.attention_norm, block.ffn_norm):
            norm.forward = labelled(norm.forward, "layer norm")
        block.ffn.forward = labelled(block.ffn.forward, "FFN (linear, ReLU)")
        for module in (block.ffn[2], block.dropout):
            module.forward = labelled(module.forward, dropout)


def innermost(event: Any, prefix: str) -> str | None:
    while event is not None:
        if event.name.startswith(prefix):
            return str(event.name[len(prefix):])
        event = event.cpu_parent
    return None


def backward_node(event: Any) -> Any:
    while event is not None:
        if event.name.startswith("autograd::engine::evaluate_function"):
            return event
        event = event.cpu_parent
    return None


def attribute(events: list[Any]) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float],
                                          dict[str, float], float]:
    """Self time (µs) by (component, direction), by (component, operator), by phase; and the steps' total.

    Every operator records the next sequence number, the one creating an autograd node takes
    it: the last forward event to start with a number is its node's, and names its label.
    """
    events = sorted(events, key=lambda event: event.time_range.start)
    label_of_node: dict[int, str] = {}
    for event in events:
        in_forward = innermost(event, PHASE) == "forward + loss" and backward_node(event) is None
        if event.sequence_nr >= 0 and in_forward:
            label_of_node[event.sequence_nr] = innermost(event, COMPONENT) or "forward: other"
    by_component: dict[tuple[str, str], float] = collections.defaultdict(float)
    by_operator: dict[tuple[str, str], float] = collections.defaultdict(float)
    by_phase: dict[str, float] = collections.defaultdict(float)
    total = 0.0
    for event in events:
        if event.name.startswith(PHASE):
            by_phase[event.name[len(PHASE):]] += event.cpu_time_total
            total += event.cpu_time_total
        phase = innermost(event, PHASE)
        if phase is None:
            continue
        if event.name.startswith((PHASE, COMPONENT)):
            # Time inside a label but in no operator: Python, module calls, the autograd engine's own.
            component, direction = "Python (between operators)", phase
        elif phase == "forward + loss":
            component, direction = innermost(event, COMPONENT) or "forward: other", "forward"
        elif phase == "backward":
            node = backward_node(event)
            if node is None:
                component = "backward: engine start"
            elif "AccumulateGrad" in node.name:
                component = "backward: gradient accumulation"
            else:
                component = label_of_node.get(node.sequence_nr, "backward: unmatched")
            direction = "backward"
        else:
            component, direction = phase, phase
        by_component[component, direction] += event.self_cpu_time_total
        by_operator[component, event.name] += event.self_cpu_time_total
    return dict(by_component), dict(by_operator), dict(by_phase), total


# -- attention variants for the A/B (forward of MultiHeadSelfAttention) ----------------------------------
def sdpa_attention(self: Any, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The library's attention before this benchmark: SDPA with the boolean mask (math path in training)."""
    batch, length, width = x.shape
    head_dim = width // self.n_heads
    q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)
    dropout = self.dropout if self.training else 0.0
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    return self.out(y.transpose(1, 2).reshape(batch, length, width)), None


VARIANTS: dict[str, Callable[..., Any] | None] = {
    "library": None,  # src/auxrec/models/transformer.py as it is (CPU training: SDPA's math path written out)
    "sdpa": sdpa_attention,  # the library's attention before this benchmark
}


def use_variant(model: Any, name: str) -> None:
    implementation = VARIANTS[name]
    if implementation is not None:
        for block in model.blocks:
            block.attention.forward = implementation.__get__(block.attention)


# -- the allocator -------------------------------------------------------------------------------------------
# `keep_freed_memory` is the library's (auxrec.training.allocator), which `auxrec train` applies on CPU.


# -- FLOPs and the CPU's peak --------------------------------------------------------------------------------
def step_flops(model: Any, batch: Batch) -> tuple[dict[str, float], float]:
    """(FLOPs the matmul kernels execute by part, FLOPs of those on real positions), forward and backward.

    Backward = 2 × forward (each matmul's two operand gradients). Executed: every column left
    after trimming, padding included, and the full L × L scores although the causal mask drops
    half. Useful: real input positions only, each attending to the real positions up to itself.
    """
    config = model.config
    rows, length = batch["inputs"].shape
    real = (batch["inputs"] != PADDING_ID).sum(1).double()  # (B,) real positions per row
    counted = int(model.loss_positions(batch).sum())
    d, f, blocks = config.hidden_dim, config.ffn_dim, config.n_blocks
    per_token = blocks * 2 * (d * 4 * d + 2 * d * f)  # qkv + out projections, two FFN layers
    forward = {
        "attention projections": blocks * 2 * rows * length * d * 4 * d,
        "attention scores + weighted sum": blocks * 2 * 2 * rows * length * length * d,
        "FFN": blocks * 2 * rows * length * 2 * d * f,
        "output layer": 2 * counted * d * model.n_items,
    }
    useful = float(real.sum()) * per_token + blocks * 2 * 2 * d * float((real * (real + 1) / 2).sum()) + \
        forward["output layer"]
    return {name: 3.0 * value for name, value in forward.items()}, 3.0 * useful


def cpu_peak(threads: int) -> dict[str, Any]:
    """FP32 peak of ``threads`` cores: cores × clock × FLOP/cycle (2 FMA pipes × 8 lanes × 2 FLOP).

    AMD Zen 2-4 (Zen 4 = family 25, model 17, the EPYC here) execute two 256-bit FMAs per
    cycle; Zen 4's AVX-512 is double-pumped on the same units, so AVX2 and AVX-512 share the
    peak. The clock is /proc/cpuinfo's (the nominal one the hypervisor shows; boost is higher).
    """
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    found = {key: re.search(rf"{key}\s*:\s*(.+)", text) for key in ("cpu MHz", "model name", "flags")}
    flags = set(found["flags"].group(1).split()) if found["flags"] else set()
    ghz = float(found["cpu MHz"].group(1)) / 1000 if found["cpu MHz"] else 2.6
    flop_per_cycle = 32 if {"avx2", "fma"} <= flags else 16
    return {"cpu": found["model name"].group(1).strip() if found["model name"] else platform.processor(),
            "clock_ghz": round(ghz, 3), "fp32_flop_per_cycle_per_core": flop_per_cycle,
            "avx2_fma": {"avx2", "fma"} <= flags, "avx512f": "avx512f" in flags, "cores": threads,
            "peak_gflops": round(threads * ghz * flop_per_cycle, 1)}


# -- the profile ---------------------------------------------------------------------------------------------
def positions(batch: Batch) -> int:
    """The trainer's count (`_batch_counts`): targets that are not padding."""
    return int((batch["targets"] != PADDING_ID).sum())


def profile_threads(dataset: PreparedDataset, args: argparse.Namespace, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    model, optimizer, training = build(dataset, args.max_length, args.seed)
    use_variant(model, args.variant)
    model.train()
    torch.manual_seed(args.seed)
    batches = batch_stream(model, dataset, training, args.seed)
    timed_steps(model, optimizer, batches, args.warmup)
    seconds, _, seen = timed_steps(model, optimizer, batches, args.steps)
    flops: collections.Counter[str] = collections.Counter()
    useful = 0.0
    for batch in seen:
        executed, real = step_flops(model, batch)
        flops.update(executed)
        useful += real
    add_labels(model)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        timed_steps(model, optimizer, batches, args.steps)
    by_component, by_operator, by_phase, total = attribute(list(profiler.events()))
    wall, peak, per_step = sum(seconds), cpu_peak(threads), 1e3 * args.steps  # µs → ms per step
    operators: collections.Counter[str] = collections.Counter()
    for (_, name), value in by_operator.items():
        operators[name] += value / per_step
    return {
        "threads": threads, "steps": args.steps, "variant": args.variant, "malloc": args.malloc,
        "rows_per_step": statistics.mean(int(b["inputs"].shape[0]) for b in seen),
        "columns_per_step": statistics.mean(int(b["inputs"].shape[1]) for b in seen),
        "loss_positions_per_step": statistics.mean(int(model.loss_positions(b).sum()) for b in seen),
        "seconds_per_step_median": statistics.median(seconds), "seconds_total": wall,
        "positions_per_second": sum(positions(batch) for batch in seen) / wall,
        "gflop_per_step": {name: value / len(seen) / 1e9 for name, value in flops.items()},
        "useful_gflop_per_step": useful / len(seen) / 1e9,
        "achieved_gflops": sum(flops.values()) / wall / 1e9, "useful_gflops": useful / wall / 1e9,
        "cpu": peak,
        "fraction_of_peak": sum(flops.values()) / wall / 1e9 / peak["peak_gflops"],
        "profiled_step_ms": total / per_step,
        "phases_ms_per_step": {name: value / per_step for name, value in by_phase.items()},
        "components_ms_per_step": {f"{component} | {direction}": value / per_step
                                   for (component, direction), value in by_component.items()},
        "operators_ms_per_step": {f"{component} | {name}": value / per_step
                                  for (component, name), value in by_operator.items()
                                  if value / per_step >= 0.2},
        "operators_all_parts_ms_per_step": {name: value for name, value in operators.most_common(30)},
    }


def print_profile(result: dict[str, Any]) -> None:
    step = result["profiled_step_ms"]
    print(f"\n== {result['threads']} thread(s), attention {result['variant']}, malloc {result['malloc']}: "
          f"{result['seconds_per_step_median'] * 1e3:.0f} ms/step median unprofiled, "
          f"{result['positions_per_second']:.0f} positions/s, profiled step {step:.0f} ms")
    print(f"   matmuls executed {sum(result['gflop_per_step'].values()):.1f} GFLOP/step → "
          f"{result['achieved_gflops']:.1f} GFLOP/s = {100 * result['fraction_of_peak']:.1f}% of "
          f"{result['cpu']['peak_gflops']} peak; on real positions "
          f"{result['useful_gflop_per_step']:.1f} GFLOP/step "
          f"→ {result['useful_gflops']:.1f} GFLOP/s (" + ", ".join(
              f"{name} {value:.2f}" for name, value in result["gflop_per_step"].items()) + ")")
    print(f"{'phase':<44}{'ms/step':>10}{'%':>7}")
    for name, value in sorted(result["phases_ms_per_step"].items(), key=lambda item: -item[1]):
        print(f"{name:<44}{value:>10.1f}{100 * value / step:>7.1f}")
    merged: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for key, value in result["components_ms_per_step"].items():
        component, direction = key.split(" | ")
        merged[component][direction if direction in ("forward", "backward") else "other"] += value
    print(f"{'component':<44}{'fwd ms':>9}{'bwd ms':>9}{'other':>9}{'total':>9}{'%':>7}")
    for component, parts in sorted(merged.items(), key=lambda item: -sum(item[1].values())):
        total = sum(parts.values())
        if total >= 0.05:
            print(f"{component:<44}{parts['forward']:>9.1f}{parts['backward']:>9.1f}{parts['other']:>9.1f}"
                  f"{total:>9.1f}{100 * total / step:>7.1f}")
    print("top operators by part (part | operator: ms/step, % of step):")
    for key, value in sorted(result["operators_ms_per_step"].items(), key=lambda item: -item[1])[:20]:
        print(f"  {key:<86}{value:>8.1f}{100 * value / step:>7.1f}")
    print("top operators over all parts:")
    for name, value in list(result["operators_all_parts_ms_per_step"].items())[:10]:
        print(f"  {name:<86}{value:>8.1f}{100 * value / step:>7.1f}")


# -- the A/B comparisons -------------------------------------------------------------------------------------
def same_weights(first: Any, other: Any) -> tuple[bool, float]:
    pairs = list(zip(first.state_dict().values(), other.state_dict().values(), strict=True))
    return all(torch.equal(a, b) for a, b in pairs), max(float((a - b).abs().max()) for a, b in pairs)


def ab(dataset: PreparedDataset, args: argparse.Namespace, names: list[str], threads: int) -> dict[str, Any]:
    """Alternate the variants' steps back to back on identical batches and seeds; compare time and results."""
    torch.set_num_threads(threads)
    runs = {}
    for name in names:
        model, optimizer, training = build(dataset, args.max_length, args.seed)
        use_variant(model, name)
        model.train()
        runs[name] = {"model": model, "optimizer": optimizer, "seconds": [], "losses": [],
                      "batches": batch_stream(model, dataset, training, args.seed),
                      "rng": torch.Generator().manual_seed(args.seed).get_state()}  # torch.manual_seed's
    for step in range(args.warmup + args.ab_steps):
        for name in (names if step % 2 == 0 else names[::-1]):
            run = runs[name]
            torch.set_rng_state(run["rng"])  # each variant continues its own dropout stream
            started = time.perf_counter()
            loss, _ = train_step(run["model"], run["optimizer"], run["batches"])
            elapsed = time.perf_counter() - started
            run["rng"] = torch.get_rng_state()
            run["losses"].append(loss)
            if step >= args.warmup:
                run["seconds"].append(elapsed)
    first = runs[names[0]]
    result: dict[str, Any] = {"threads": threads, "steps": args.ab_steps, "warmup": args.warmup,
                              "variants": {}}
    for name, run in runs.items():
        identical, largest = same_weights(first["model"], run["model"])
        result["variants"][name] = {
            "seconds_per_step_median": statistics.median(run["seconds"]),
            "ratio_to_first": statistics.median(run["seconds"]) / statistics.median(first["seconds"]),
            "losses_identical": run["losses"] == first["losses"], "weights_identical": identical,
            "largest_weight_difference": largest, "last_loss": run["losses"][-1],
        }
    return result


def weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def child(dataset: PreparedDataset, args: argparse.Namespace) -> None:
    """One arm of the allocator A/B: ``--child-steps`` timed steps from the seed; prints one JSON line."""
    torch.set_num_threads(int(args.threads))
    model, optimizer, training = build(dataset, args.max_length, args.seed)
    use_variant(model, args.variant)
    model.train()
    torch.manual_seed(args.seed)  # the dropout stream, as under `seeded` in `train_run`
    batches = batch_stream(model, dataset, training, args.seed)
    _, warm_losses, _ = timed_steps(model, optimizer, batches, args.warmup)
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds, losses, _ = timed_steps(model, optimizer, batches, args.child_steps)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "seconds": seconds, "losses": warm_losses + losses, "weights": weights_digest(model),
        "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / args.child_steps,
        "system_seconds_per_step": (after.ru_stime - before.ru_stime) / args.child_steps,
        "user_seconds_per_step": (after.ru_utime - before.ru_utime) / args.child_steps,
    }))


def ab_malloc(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """Allocator A/B: child processes alternated default, keep, keep, default ... (a per-process setting)."""
    arms: dict[str, list[dict[str, Any]]] = {"default": [], "keep": []}
    for round_ in range(args.malloc_rounds):
        for arm in (("default", "keep") if round_ % 2 == 0 else ("keep", "default")):
            command = [sys.executable, __file__, "--data", str(args.data), "--max-length",
                       str(args.max_length), "--threads", str(threads), "--variant", args.variant, "--warmup",
                       str(args.warmup), "--seed", str(args.seed), "--child-steps", str(args.ab_steps),
                       "--malloc", arm]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            arms[arm].append(json.loads(output.strip().splitlines()[-1]))
    result: dict[str, Any] = {"threads": threads, "rounds": args.malloc_rounds, "warmup": args.warmup,
                              "steps_per_round": args.ab_steps, "variant": args.variant, "arms": {}}
    for arm, runs in arms.items():
        result["arms"][arm] = {
            "seconds_per_step_median": statistics.median(value for run in runs for value in run["seconds"]),
            "round_medians": [statistics.median(run["seconds"]) for run in runs],
            "minor_faults_per_step": statistics.median(run["minor_faults_per_step"] for run in runs),
            "system_seconds_per_step": statistics.median(run["system_seconds_per_step"] for run in runs),
            "user_seconds_per_step": statistics.median(run["user_seconds_per_step"] for run in runs),
            "weights": sorted({run["weights"] for run in runs}), "losses": runs[0]["losses"],
        }
    default, keep = result["arms"]["default"], result["arms"]["keep"]
    result["ratio_keep_to_default"] = keep["seconds_per_step_median"] / default["seconds_per_step_median"]
    result["identical"] = default["weights"] == keep["weights"] and len(default["weights"]) == 1 and all(
        run["losses"] == default["losses"] for runs in arms.values() for run in runs)
    return result


def thread_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/tmp/ml100k-prof"),
                        help="prepared ML-100K (prepared there from --source when missing)")
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30,
                        help="timed steps, then as many profiled ones, per thread count")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", default="2,1",
                        help="thread counts to profile, comma-separated ('' for none)")
    parser.add_argument("--variant", default="library", choices=sorted(VARIANTS), help="attention to profile")
    parser.add_argument("--ab", default="", help="attention variants to compare step by step: sdpa,library")
    parser.add_argument("--ab-steps", type=int, default=20,
                        help="steps per variant (per process with --ab-malloc)")
    parser.add_argument("--ab-threads", default="2,1")
    parser.add_argument("--malloc", default="default", choices=("default", "keep"),
                        help="keep: glibc keeps freed memory instead of unmapping it (`keep_freed_memory`)")
    parser.add_argument("--ab-malloc", action="store_true", help="A/B of --malloc default against keep")
    parser.add_argument("--malloc-rounds", type=int, default=4, help="child processes per arm")
    parser.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help='JSON: {"runs": [this run\'s report]}')
    parser.add_argument("--append", action="store_true",
                        help="add this run to --out's runs instead of replacing them")
    args = parser.parse_args()
    if args.malloc == "keep":
        keep_freed_memory()
    dataset = prepared_data(args.data, args.source)
    if args.child_steps:
        child(dataset, args)
        return
    report: dict[str, Any] = {
        "model": MODEL, "dataset": dataset.name, "max_length": args.max_length, "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_average_at_start": os.getloadavg(),
        "command": " ".join(sys.argv), "malloc": args.malloc, "profiles": [], "ab": [], "ab_malloc": [],
    }
    for threads in thread_counts(args.threads):
        result = profile_threads(dataset, args, threads)
        print_profile(result)
        report["profiles"].append(result)
    for threads in thread_counts(args.ab_threads) if args.ab else []:
        result = ab(dataset, args, args.ab.split(","), threads)
        print(f"\n== attention A/B, {threads} thread(s), {args.ab_steps} alternated steps each:")
        for name, found in result["variants"].items():
            print(f"  {name:<10} {found['seconds_per_step_median'] * 1e3:8.0f} ms/step  "
                  f"ratio {found['ratio_to_first']:.3f}  losses identical {found['losses_identical']}  "
                  f"weights identical {found['weights_identical']} "
                  f"(largest difference {found['largest_weight_difference']:.1e})")
        report["ab"].append(result)
    for threads in thread_counts(args.ab_threads) if args.ab_malloc else []:
        result = ab_malloc(args, threads)
        print(f"\n== allocator A/B, {threads} thread(s), {args.malloc_rounds} alternated processes × "
              f"{args.ab_steps} steps each (identical losses and weights: {result['identical']}):")
        for arm, found in result["arms"].items():
            print(f"  {arm:<8} {found['seconds_per_step_median'] * 1e3:8.0f} ms/step  "
                  f"page faults/step {found['minor_faults_per_step']:8.0f}  "
                  f"system {found['system_seconds_per_step'] * 1e3:5.0f} ms/step  "
                  f"user {found['user_seconds_per_step'] * 1e3:6.0f} ms/step")
        print(f"  ratio keep / default {result['ratio_keep_to_default']:.3f}")
        report["ab_malloc"].append(result)
    report["load_average_at_end"] = os.getloadavg()
    if args.out:
        runs = json.loads(args.out.read_text())["runs"] if args.append and args.out.is_file() else []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": [*runs, report]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
