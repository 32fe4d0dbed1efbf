"""The `auxrec` command line: thin typer commands over the library.

Each command parses options, calls one library function and prints a summary. A user
mistake (an `AuxrecError`, or an OS error on a path the user gave) becomes one line on
stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from auxrec.exceptions import AuxrecError, ConfigError
from auxrec.features.basic import BASIC_MODALITIES
from auxrec.features.registry import ENCODERS, MODALITIES, PATH_ENCODER, encoder_names

app = typer.Typer(
    name="auxrec",
    help="Multi-modal sequential recommendation: prepare data, embed items, train, evaluate, reproduce the paper.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)  # long summary lines stay whole in logs
error_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
USER_ERROR_EXIT_CODE = 2
#: Where `auxrec prepare` writes when no --out is given (runs go to `run_folder.RUNS_ROOT`).
DEFAULT_PREPARED_ROOT = Path("prepared")


def _print_error(error: BaseException) -> None:
    # escape: a message may quote "[models.sasrc]" or a user's value, which rich would read as markup
    error_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


def user_errors_as_one_line(command: F) -> F:
    """Turn user mistakes into one clear stderr line and a non-zero exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AuxrecError as error:
            _print_error(error)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None
        except OSError as error:  # unreadable/unwritable paths the user named
            _print_error(error)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None
        except KeyboardInterrupt:
            error_console.print("interrupted; unfinished outputs keep their .partial names (`train --resume` and "
                                "`reproduce` continue from the last checkpoint)", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _encoder_choices(modality: str) -> str:
    names = [name for name in encoder_names(modality) if name != PATH_ENCODER]
    return ", ".join(names) + (", or a model folder / cached hub name" if PATH_ENCODER in encoder_names(modality)
                               else "")


def _parse_value(text: str) -> Any:
    """Command-line option values: JSON literals (true, 3, 0.5, null) or plain text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _print_metrics(title: str, rows: dict[str, dict[str, float]]) -> None:
    from auxrec.evaluation.metrics import METRIC_NAMES

    table = Table(title=title)
    table.add_column("model")
    for name in METRIC_NAMES:
        table.add_column(name, justify="right")
    for model, values in rows.items():
        table.add_row(model, *(f"{values[name]:.4f}" for name in METRIC_NAMES))
    console.print(table)


@app.command()
@user_errors_as_one_line
def prepare(
    dataset: Annotated[str, typer.Argument(help="loader name: ml-100k, ml-1m, ml-20m, ml-25m, hm, amazon, generic, "
                                                "synthetic")],
    source: Annotated[Path, typer.Option(help="folder holding the raw files")],
    out: Annotated[Path | None, typer.Option(
        help="prepared dataset folder to write (default: prepared/DATASET, or prepared/SOURCE-FOLDER for generic "
             "and amazon; '-cold' added with --cold-start-fraction or --cold-start-where)")] = None,
    k_core: Annotated[int, typer.Option(help="keep users and items with at least k interactions (0 = off)")] = 0,
    min_rating: Annotated[float | None, typer.Option(help="keep interactions with rating >= this")] = None,
    drop_duplicates: Annotated[bool, typer.Option(help="drop exact duplicate interactions")] = True,
    cold_start_fraction: Annotated[float | None, typer.Option(
        help="hold out the share of items first seen last as cold-start items: their training rows are dropped, "
             "so they occur only as validation/test targets (e.g. 0.1)")] = None,
    cold_start_where: Annotated[str | None, typer.Option(
        help="hold out the items whose item-table attribute satisfies 'COLUMN OP VALUE' as cold-start items, "
             "e.g. 'year >= 2000' (new releases; OP: >= <= == != > <)")] = None,
    keep_items_without_interactions: Annotated[bool, typer.Option(
        help="keep the item-table rows nobody interacted with as candidates and negatives (a real catalogue; "
             "without it every never-trained item is somebody's target)")] = False,
    option: Annotated[list[str] | None, typer.Option(help="loader option KEY=VALUE (repeatable)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing prepared folder")] = False,
) -> None:
    """Load a dataset, clean it, remap ids, split leave-one-out and write Parquet + manifest."""
    from auxrec.config import checked_options, parse_assignments
    from auxrec.data.loaders import load_dataset
    from auxrec.data.prepare import PrepareOptions, prepare_dataset, write_prepared
    from auxrec.io import check_output_folder

    loader_options = {k: _parse_value(v) for k, v in parse_assignments(option or [], "--option").items()}
    options = checked_options(PrepareOptions, "--", drop_duplicates=drop_duplicates, min_rating=min_rating,
                              k_core=k_core, cold_start_fraction=cold_start_fraction,
                              cold_start_where=cold_start_where,
                              keep_items_without_interactions=keep_items_without_interactions)
    if out is None:
        named_by_source = dataset in ("generic", "amazon")  # one loader, many datasets
        out = DEFAULT_PREPARED_ROOT / ((source.resolve().name if named_by_source else dataset)
                                       + ("-cold" if cold_start_fraction or cold_start_where else ""))
    check_output_folder(out, "prepared", overwrite, inputs=(source,))  # before the (long) loading
    started = time.perf_counter()
    raw = load_dataset(dataset, source, **loader_options)
    prepared = prepare_dataset(raw, options)
    read = tuple(Path(raw.source.get("path", source)) / name for name in raw.source.get("files", []))
    write_prepared(prepared, out, overwrite=overwrite, inputs=(source, *read))
    manifest = prepared["manifest"]
    counts = manifest["counts"]
    console.print(
        f"prepared [bold]{manifest['name']}[/] → {out}\n"
        f"  {manifest['n_users']:,} users, {manifest['n_items']:,} items, {manifest['n_interactions']:,} interactions"
        f" (train {manifest['n_train']:,}, valid {manifest['n_valid']:,}, test {manifest['n_test']:,})\n"
        f"  dropped: {counts['duplicates_dropped']:,} duplicates, {counts['k_core_dropped']:,} by k-core; "
        f"{counts['users_train_only']:,} users with < 3 interactions are train-only\n"
        f"  fingerprint {manifest['fingerprint'][:16]}  ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )
    if cold := manifest.get("cold_start"):
        chosen = f"with {cold['where']}" if "where" in cold else f"first seen after {cold['cut_time_utc']}"
        console.print(f"  cold start: {cold['cold_items']:,} items {chosen} are cold "
                      f"({cold['cold_valid_targets']:,} validation and {cold['cold_test_targets']:,} test targets); "
                      f"{cold['train_rows_dropped']:,} of their training rows and {cold['users_dropped']:,} users "
                      "left without one were dropped", highlight=False)
    if counts.get("items_without_interactions_kept"):
        console.print(f"  {counts['items_without_interactions_kept']:,} items nobody interacted with are in the catalogue "
                      "(candidates and negatives only)", highlight=False)
    if counts.get("item_rows_without_interactions"):
        console.print(f"  {counts['item_rows_without_interactions']:,} item-table rows name items with no interaction "
                      "(left out of the prepared item table)", highlight=False)
    if manifest["n_valid"] == 0 or manifest["n_test"] == 0:
        error_console.print("[bold yellow]warning:[/] no user has the 3 or more interactions that leave-one-out needs "
                            "for a validation and a test target, so no model can be trained or evaluated on this "
                            "data; keep more interactions per user (a lower --k-core or --min-rating, more data)",
                            highlight=False, soft_wrap=True)


@app.command()
@user_errors_as_one_line
def train(
    model: Annotated[str, typer.Argument(help="registered model: poprec, bpr, transrec, sasrec, bert4rec, kebert4rec")],
    data: Annotated[Path, typer.Option(help="prepared dataset folder")],
    out: Annotated[Path | None, typer.Option(
        help="run folder to write (default: runs/DATA/MODEL[+MODALITIES]-seedS, never an existing run's)")] = None,
    seed: Annotated[int, typer.Option(help="seed for initialisation, batches and sampled negatives")] = 0,
    aux: Annotated[str | None, typer.Option(
        help=f"auxiliary modalities, comma-separated from {', '.join(BASIC_MODALITIES)} (SASRec+/BERT4Rec+)")] = None,
    fusion: Annotated[str | None, typer.Option(help="how modalities are fused: concat or sum")] = None,
    features: Annotated[list[str] | None, typer.Option(
        help="NAME=PATH: your own item embeddings (.npz with 'ids' and 'vectors', or .npy + PATH.ids)")] = None,
    loss: Annotated[str | None, typer.Option(
        help="ce (full softmax), sampled (sampled softmax for large catalogues; --set n_negatives=N) or, SASRec "
             "only, bce (one sampled negative)")] = None,
    max_len: Annotated[int | None, typer.Option(help="maximum sequence length (200 for MovieLens, 50 short)")] = None,
    hidden_dim: Annotated[int | None, typer.Option(help="model width d")] = None,
    n_blocks: Annotated[int | None, typer.Option(help="transformer blocks")] = None,
    n_heads: Annotated[int | None, typer.Option(help="attention heads")] = None,
    dropout: Annotated[float | None, typer.Option(help="dropout rate")] = None,
    mask_probability: Annotated[float | None, typer.Option(help="BERT4Rec: share of items masked in training")]
    = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="any other model setting KEY=VALUE (repeatable)")]
    = None,
    config: Annotated[Path | None, typer.Option(help="JSON file with 'model' and 'training' sections")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs")] = None,
    batch_size: Annotated[int | None, typer.Option(help="training batch size")] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay")] = None,
    patience: Annotated[int | None, typer.Option(help="validation rounds without improvement before stopping")] = None,
    min_epochs: Annotated[int | None, typer.Option(help="never stop early before this epoch (BERT4Rec: ~40)")]
    = None,
    eval_every: Annotated[int | None, typer.Option(help="validate every N epochs")] = None,
    validation_protocol: Annotated[str | None, typer.Option(
        help="protocol of the validation that stops training: sampled (default) or full (tiny catalogues)")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    protocol: Annotated[list[str] | None, typer.Option(help="protocols to report (default: sampled and full)")] = None,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run from its last checkpoint")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run folder")] = False,
) -> None:
    """Train a model on a prepared dataset and evaluate it; writes a run folder."""
    from auxrec.config import parse_assignments, read_config_file
    from auxrec.experiments.run_folder import RunFolder, default_run_folder
    from auxrec.experiments.runs import DEFAULT_PROTOCOLS, train_run
    from auxrec.io import check_output_folder

    file_values = read_config_file(config) if config else {}
    if "seed" in file_values and seed == 0:
        seed = int(file_values["seed"])
    modalities = tuple(m.strip() for m in aux.split(",") if m.strip()) if aux else ()
    if out is None:  # every torchrun process names it before any of them writes (train_run's first barrier)
        out = default_run_folder(data, model, modalities, seed, resume=resume, overwrite=overwrite)
    check_output_folder(out, "run", overwrite, inputs=(data, config))
    model_flags = {"loss": loss, "max_length": max_len, "hidden_dim": hidden_dim, "n_blocks": n_blocks,
                   "n_heads": n_heads, "dropout": dropout, "mask_probability": mask_probability,
                   "aux_fusion": fusion}
    model_layers = [("config file", file_values.get("model", {})),
                    ("command line", {k: v for k, v in model_flags.items() if v is not None}),
                    ("--set", parse_assignments(set_ or [], "--set"))]
    flags = {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr, "weight_decay": weight_decay,
             "patience": patience, "min_epochs": min_epochs, "eval_every": eval_every, "device": device,
             "validation_protocol": validation_protocol}
    training_layers = [("config file", file_values.get("training", {})),
                       ("command line", {k: v for k, v in flags.items() if v is not None}
                        | ({} if progress else {"progress": False}))]
    feature_files = {k: Path(v) for k, v in parse_assignments(features or [], "--features").items()}
    started = time.perf_counter()
    metrics = train_run(model, data, out, seed, model_layers, training_layers,
                        tuple(protocol) if protocol else DEFAULT_PROTOCOLS, overwrite,
                        aux=modalities, feature_files=feature_files, resume=resume)
    if not metrics:  # a torchrun process other than the main one, which reports for all
        return
    label = model + ("+" if modalities else "")
    for protocol_name, values in metrics["test"].items():
        _print_metrics(f"{label} — test, {protocol_name}", {label: values})
    finish = RunFolder(out).read_training_log().get("finish")
    if finish:
        from auxrec.models.content_neighbours import describe_choice

        console.print(describe_choice(finish), highlight=False)
    console.print(f"run written to {out} ({time.perf_counter() - started:.1f} s)", highlight=False)


@app.command()
@user_errors_as_one_line
def embed(
    data: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    modalities: Annotated[str, typer.Option(help=f"comma-separated: {', '.join(MODALITIES)}")] = ",".join(MODALITIES),
    text_encoder: Annotated[str, typer.Option(help=f"{_encoder_choices('text')} (`auxrec encoders` describes them)")]
    = "auto",
    image_encoder: Annotated[str, typer.Option(help=f"{_encoder_choices('image')} (`auxrec encoders`)")] = "auto",
    tabular_encoder: Annotated[str, typer.Option(help=f"{_encoder_choices('tabular')} (`auxrec encoders`)")]
    = "auto",
    text_template: Annotated[str | None, typer.Option(help="text template over item fields, e.g. '{title}. {plot}'")]
    = None,
    batch_size: Annotated[int, typer.Option(help="encoder batch size")] = 32,
    rebuild: Annotated[bool, typer.Option(help="recompute even when a valid cache entry exists")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Compute (or reuse from the cache) pretrained item embeddings; `train --aux` then uses them."""
    from auxrec.features.embed import embed_dataset, format_report

    listed = {name.strip() for name in modalities.split(",")}
    options = {"--text-encoder": ("text", text_encoder, "auto"), "--text-template": ("text", text_template, None),
               "--image-encoder": ("image", image_encoder, "auto"),
               "--tabular-encoder": ("tabular", tabular_encoder, "auto")}
    for option, (modality, value, default) in options.items():
        if value != default and modality not in listed:  # a choice that would silently do nothing
            raise ConfigError(f"{option} {value} has no effect: {modality} is not in --modalities ({modalities}); "
                              f"add {modality} or drop {option}")
    report = embed_dataset(data, modalities, text_encoder=text_encoder, image_encoder=image_encoder,
                           tabular_encoder=tabular_encoder,
                           progress=progress, log=lambda text: console.print(text, highlight=False),
                           text_template=text_template, batch_size=batch_size, rebuild=rebuild)
    console.print(format_report(report), highlight=False)


@app.command()
@user_errors_as_one_line
def evaluate(
    run: Annotated[Path, typer.Argument(help="run folder written by `auxrec train`")],
    protocol: Annotated[list[str] | None, typer.Option(help="sampled, popularity or full (repeatable)")] = None,
) -> None:
    """Evaluate a trained run under one or more protocols; updates its metrics.json."""
    from auxrec.experiments.runs import DEFAULT_PROTOCOLS, evaluate_run

    protocols = tuple(protocol) if protocol else DEFAULT_PROTOCOLS
    metrics = evaluate_run(run, protocols)
    for protocol_name in protocols:
        _print_metrics(f"{run.name} — test, {protocol_name}", {run.name: metrics["test"][protocol_name]})


@app.command()
@user_errors_as_one_line
def breakdown(
    run: Annotated[Path, typer.Argument(help="run folder written by `auxrec train`")],
    protocol: Annotated[str, typer.Option(help="protocol to show (sampled, popularity, full, ...)")] = "full",
    split: Annotated[str, typer.Option(help="valid or test")] = "test",
) -> None:
    """Show a run's NDCG@10 and HR@10 by target group: cold/warm, popularity tercile, novel/repeated, ties."""
    from auxrec.data.dataset import PreparedDataset
    from auxrec.evaluation.breakdown import complete_from_ranks
    from auxrec.exceptions import RunError
    from auxrec.experiments.run_folder import RunFolder

    folder = RunFolder(run)
    if not folder.config_path.is_file():
        raise RunError(f"{run} is not an auxrec run (no {folder.config_path.name})")
    if folder.breakdown_path.is_file():
        breakdowns = folder.read_breakdowns()
    else:  # a run from before breakdown.json: compute it from the saved ranks
        config = folder.read_config()
        dataset = PreparedDataset.load(config["data"]["path"])
        if dataset.fingerprint != config["data"]["fingerprint"]:
            raise RunError(f"the dataset at {config['data']['path']} changed since {run} was trained (fingerprint "
                           "differs); breakdowns need the data the run was evaluated on")
        breakdowns = complete_from_ranks(dataset, folder.ranks_path, {})
    groups = breakdowns.get(split, {}).get(protocol)
    if groups is None:
        available = sorted({f"{s}/{p}" for s, by_protocol in breakdowns.items() for p in by_protocol})
        raise RunError(f"{run} has no {split} results under protocol {protocol!r} (it has: "
                       f"{', '.join(available) or 'none'}); `auxrec evaluate {run} --protocol {protocol}` adds them")
    table = Table(title=f"{run.name} — {split}, {protocol}, by target group")
    for column in ("group", "value", "NDCG@10", "HR@10", "users"):
        table.add_column(column, justify="left" if column in ("group", "value") else "right")
    for group, values in groups.items():
        for value, numbers in values.items():
            cells = [f"{numbers[m]:.4f}" if numbers.get(m) is not None and numbers[m] == numbers[m] else "–"
                     for m in ("NDCG@10", "HR@10")]  # None (JSON) or NaN: an empty group
            table.add_row(group, value, *cells, f"{numbers.get('users', 0):,}")
    console.print(table)


@app.command()
@user_errors_as_one_line
def compare(
    runs: Annotated[list[Path], typer.Argument(help="finished run folders of two or more variants, every seed "
                                                    "(e.g. runs/sasrec-s* runs/sasrec-plus-s*); the first run's "
                                                    "variant is the baseline")],
    protocol: Annotated[list[str] | None, typer.Option(help="protocol(s) to compare (default: every protocol "
                                                            "all runs have)")] = None,
    split: Annotated[str, typer.Option(help="valid or test")] = "test",
    metric: Annotated[str, typer.Option(help="NDCG@10, HR@10, NDCG@5, HR@5, HR@1 or MAP")] = "NDCG@10",
    by_group: Annotated[bool, typer.Option(help="also by target group: cold/warm, popularity tercile, "
                                                "novel/repeated, same-time ties (NDCG@10 and HR@10)")] = False,
    out: Annotated[Path | None, typer.Option(help="also write the table: .json or .csv")] = None,
) -> None:
    """Compare variants seed by seed: mean ± sd, difference, 95% CI and paired t-test, Holm-adjusted."""
    from auxrec.experiments.comparison import compare as compare_runs
    from auxrec.experiments.comparison import comparison_csv, load_run_for_comparison
    from auxrec.io import write_json_atomic, write_text_atomic

    if out is not None and out.suffix not in (".json", ".csv"):
        raise ConfigError(f"--out must end in .json or .csv, got {out.name}")
    result = compare_runs([load_run_for_comparison(run) for run in runs], split=split, protocols=protocol,
                          metric=metric, by_group=by_group)
    for label, seeds in result.variants.items():
        role = "baseline" if label == result.baseline else "variant"
        console.print(f"{role}: {escape(label)} — seeds {', '.join(map(str, seeds))}", highlight=False)

    def number(value: float | None, signed: bool = False) -> str:  # .1234, as the docs write them
        if value is None or math.isnan(value):
            return "–"
        text = f"{value:+.4f}" if signed else f"{value:.4f}"
        return text.replace("0.", ".", 1)

    def spread(mean: float, std: float) -> str:
        return number(mean) + ("" if math.isnan(std) else f" ± {number(std)}")

    columns = ("protocol", "group", "users", "seeds", "baseline", "variant", "difference", "95% CI", "p", "Holm")
    for candidate in [label for label in result.variants if label != result.baseline]:
        title = (f"{split} {metric}: {escape(candidate)} against {escape(result.baseline)}, "
                 "paired by seed (p: paired t-test; Holm: adjusted over every row printed)")
        rows = []
        for row in (row for row in result.rows if row.candidate == candidate):
            test = row.test
            rows.append((row.protocol, "all" if row.group == "all" else f"{row.group}: {row.value}",
                         "–" if row.users is None else f"{row.users:,}", str(test.n),
                         spread(test.mean_without, test.std_without), spread(test.mean_with, test.std_with),
                         number(test.mean_difference, signed=True),
                         f"{number(test.ci_low, signed=True)}, {number(test.ci_high, signed=True)}",
                         number(test.p), number(test.p_holm)))
        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column in ("protocol", "group") else "right")
        for cells in rows:
            table.add_row(*cells)
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum  # unclamped
        if needed <= console.width:
            console.print(table)
            continue
        # Too narrow a terminal: a squeezed table would cut the numbers ("+.02…"); one line per row instead.
        console.print(title, highlight=False)
        for protocol_name, group, users, n, baseline, variant, difference, interval, p, holm in rows:
            console.print(f"  {protocol_name}, {group} ({users} users, {n} seeds): {baseline} → {variant}, "
                          f"difference {difference} [95% CI {interval}], p {p}, Holm {holm}", highlight=False)
    if out is not None:
        if out.suffix == ".json":
            write_json_atomic(out, result.to_json())
        else:
            write_text_atomic(out, comparison_csv(result))
        console.print(f"written to {out}")


@app.command()
@user_errors_as_one_line
def generate(
    out: Annotated[Path, typer.Option(help="folder to write (generic source format)")],
    preset: Annotated[str, typer.Option(help="tiny, small, ml20m or catalog1m")] = "small",
    seed: Annotated[int, typer.Option(help="generator seed")] = 0,
    images: Annotated[bool | None, typer.Option(help="write item images (default: the preset's)")] = None,
) -> None:
    """Generate a synthetic multimodal dataset; prepare it with `auxrec prepare synthetic`."""
    from auxrec.data.synthetic import SyntheticConfig, write_synthetic

    config = dataclasses.replace(SyntheticConfig.preset(preset), seed=seed)
    if images is not None:
        config = dataclasses.replace(config, images=images)
    write_synthetic(config, out, progress=True)
    console.print(f"synthetic dataset ({preset}) written to {out}", highlight=False)


@app.command()
@user_errors_as_one_line
def quickstart(
    workdir: Annotated[Path, typer.Option(help="where data and runs go")] = Path("auxrec-quickstart"),
    seed: Annotated[int, typer.Option(help="seed")] = 0,
) -> None:
    """Generate synthetic data, train PopRec, SASRec and SASRec+, print a results table (< 2 min)."""
    from auxrec.experiments.quickstart import QUICKSTART_RUNS, quickstart_run_folder, run_quickstart

    started = time.perf_counter()
    results = run_quickstart(workdir, seed=seed, log=lambda text: console.print(text, highlight=False))
    for protocol_name, rows in results.items():
        _print_metrics(f"quickstart — synthetic data, test, {protocol_name}", rows)
    console.print(f"done in {time.perf_counter() - started:.0f} s; runs are in {workdir / 'runs'}", highlight=False)
    best = quickstart_run_folder(workdir, QUICKSTART_RUNS[-1][0], seed)  # SASRec+, the best of the three
    console.print(f"next: `auxrec serve {best}` shows its recommendations in a web page; `auxrec recommend {best} "
                  "--k 10 --out recs.csv` writes them for every user", highlight=False)


@app.command()
@user_errors_as_one_line
def reproduce(
    target: Annotated[str, typer.Argument(help="table1, table2, table3, figure2, figure3 or all (comma-separated)")],
    dataset: Annotated[str | None, typer.Option(help="spec name: configs/NAME.toml (e.g. ml-100k, ml-1m, hm)")]
    = None,
    spec: Annotated[Path | None, typer.Option(help="a spec file instead of --dataset")] = None,
    protocol: Annotated[list[str] | None, typer.Option(help="report under this protocol (repeatable; default: the "
                                                             "spec's, sampled and full)")] = None,
    seeds: Annotated[int | None, typer.Option(help="seeds for Table 2 (Tables 1 and 3 use at most this many)")]
    = None,
    workdir: Annotated[Path | None, typer.Option(help="prepared data and runs (default: auxrec-runs/NAME)")] = None,
    reports: Annotated[Path | None, typer.Option(help="where reports go (default: reports/NAME)")] = None,
    jobs: Annotated[int, typer.Option(help="runs trained at once, each in its own process with cores/jobs "
                                           "threads (2 on a 2-core machine is ~1.4x faster than 1)")] = 1,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say which runs are done, partly trained or "
                                                            "still to train; train and write nothing")] = False,
    finished_only: Annotated[bool, typer.Option("--finished-only", help="interim reports from the runs finished so "
                                                                        "far; train nothing (works while another "
                                                                        "reproduction trains)")] = False,
    cached_features: Annotated[bool, typer.Option("--cached-features", help="train on the item features already "
                                                                            "embedded in the work folder, without the "
                                                                            "raw data or encoders (e.g. a work folder "
                                                                            "copied to a GPU machine)")] = False,
    executor: Annotated[Literal["local", "ray"], typer.Option(help="local: a process pool of --jobs on this "
                                                                   "machine; ray: each run a Ray task on a "
                                                                   "cluster (--ray-address) or a local Ray")]
    = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to submit to (auto, ray://HOST:10001); "
                                                         "default: RAY_ADDRESS, else a local Ray instance")] = None,
    cpus_per_run: Annotated[int, typer.Option(help="with --executor ray: CPUs (torch threads) per run")] = 1,
    gpus_per_run: Annotated[float, typer.Option(help="with --executor ray: GPUs per run (0.25 packs four runs "
                                                     "on a GPU)")] = 0.0,
) -> None:
    """Reproduce the paper's tables and figures on a dataset; finished runs are reused, never retrained."""
    from auxrec.experiments.ray_executor import RayExecutor
    from auxrec.experiments.reproduce import reproduce as run_reproduction
    from auxrec.experiments.specs import find_spec, load_spec

    if (dataset is None) == (spec is None):
        raise ConfigError("give exactly one of --dataset NAME or --spec FILE")
    loaded = load_spec(spec if spec is not None else find_spec(dataset or ""))
    reports = reports or Path("reports") / loaded.name
    if dry_run:
        _print_reproduction_status(loaded, target, seeds, workdir or Path("auxrec-runs") / loaded.name, reports, jobs)
        return
    started = time.perf_counter()
    summary = run_reproduction(
        loaded, [t.strip() for t in target.split(",") if t.strip()], workdir or Path("auxrec-runs") / loaded.name,
        reports, protocols=protocol, seeds=seeds,
        log=lambda text: console.print(text, highlight=False), progress=progress, jobs=jobs,
        finished_only=finished_only, cached_features=cached_features,
        executor=RayExecutor(ray_address, cpus_per_run, gpus_per_run) if executor == "ray" else None,
    )
    for path in summary["files"]:
        if str(path).endswith(".md") and "table" in Path(path).name:
            console.print(Path(path).read_text(), highlight=False)
    console.print(f"{summary['runs']} runs; reports in {reports} "
                  f"({time.perf_counter() - started:.0f} s)", highlight=False)


@app.command()
@user_errors_as_one_line
def recommend(
    run: Annotated[Path, typer.Argument(help="run folder written by `auxrec train`")],
    k: Annotated[int, typer.Option(help="recommendations per user")] = 10,
    users: Annotated[Path | None, typer.Option(
        help="text file of user ids, one per line (default: every user of the run's dataset)")] = None,
    out: Annotated[Path | None, typer.Option(help="write recommendations to a .parquet or .csv file "
                                                  "(default: print the first users)")] = None,
    exclude_seen: Annotated[bool, typer.Option(help="never recommend an item already in the user's history")]
    = True,
    chunk_size: Annotated[int, typer.Option(help="users scored at once (memory stays flat)")] = 1024,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Top-k recommendations for every user (or those in --users), in batch, as a file."""
    from auxrec.serving.batch import read_user_file, recommend_to_file
    from auxrec.serving.trained_model import load_run

    model = load_run(run, chunk_size=chunk_size)
    user_ids = read_user_file(users) if users is not None else None
    if out is None:
        shown = (user_ids or list(model.user_ids))[:5]
        for result in model.recommend(users=shown, k=k, exclude_seen=exclude_seen):
            console.print(f"user {result.user}: " + ", ".join(
                f"{item} ({score:.3f})" for item, score in zip(result.items, result.scores)), highlight=False)
        console.print("(the first users only; --out FILE writes every user)", highlight=False)
        return
    summary = recommend_to_file(model, out, k=k, users=user_ids, exclude_seen=exclude_seen, overwrite=overwrite,
                                progress=progress)
    console.print(f"{summary.users:,} users x {k} recommendations written to {out} in {summary.seconds:.1f} s "
                  f"({summary.users_per_second:,.0f} users/s)", highlight=False)


@app.command()
@user_errors_as_one_line
def models(
    name: Annotated[str | None, typer.Argument(help="a model to describe (default: list every model)")] = None,
) -> None:
    """List the models, or one model's settings (for --set, --config) and the training settings."""
    from auxrec.config import describe_settings
    from auxrec.experiments.runs import model_training_defaults
    from auxrec.models import REGISTRY, lookup
    from auxrec.training.config import TrainingConfig

    if name is None:
        table = Table(title="models (`auxrec models NAME` for the settings)")
        for column in ("name", "item features", "new histories", "what"):
            table.add_column(column)
        for model_name, (model_class, _) in REGISTRY.items():
            summary = (model_class.__doc__ or sys.modules[model_class.__module__].__doc__ or "").strip()
            table.add_row(model_name, "yes" if model_class.uses_item_features else "no",
                          "yes" if model_class.scores_new_histories else "known users only",
                          escape(summary.splitlines()[0]) if summary else "")
        console.print(table)
        return
    _, config_class = lookup(name)
    for title, settings_class, defaults in (
            (f"{name} model settings (--set KEY=VALUE)", config_class, {}),
            (f"training settings of {name} (flags such as --epochs, or --config)", TrainingConfig,
             model_training_defaults(name))):
        table = Table(title=title)
        for column in ("setting", "type", "default", "meaning"):
            table.add_column(column)
        for setting in describe_settings(settings_class, defaults):
            table.add_row(setting.name, escape(setting.type), escape(json.dumps(setting.default)),
                          escape(setting.description))
        console.print(table)


@app.command()
def encoders() -> None:
    """List the modalities and the pretrained item encoders `auxrec embed` can use."""
    table = Table(title="pretrained item encoders (auxrec embed --text-encoder / --image-encoder / "
                        "--tabular-encoder NAME)")
    for column in ("modality", "name", "what", "packages"):
        table.add_column(column)
    for (modality, name), entry in ENCODERS.items():
        table.add_row(modality, "(folder or hub name)" if name == PATH_ENCODER else name, escape(entry.summary),
                      ", ".join(entry.packages))
    console.print(table)
    console.print("basic encoders (no download, used by train --aux when nothing is embedded): "
                  + ", ".join(BASIC_MODALITIES), highlight=False)


@app.command("add-items")
@user_errors_as_one_line
def add_items(
    run: Annotated[Path, typer.Argument(help="run folder of SASRec+/BERT4Rec+ (trained with --aux and content on "
                                             "the output side, the default)")],
    items: Annotated[Path, typer.Option(help="new items, .csv or .parquet, with an item_id column and the "
                                             "dataset's item columns (text, image path, attributes)")],
    neighbours: Annotated[int, typer.Option(help="borrow a new item's id embedding from its N content-nearest "
                                                 "trained items (0: none, the default; see docs/serving.md)")] = 0,
) -> None:
    """Make items that arrived after training recommendable, through their content (no retraining)."""
    from auxrec.serving.new_items import add_items as add_new_items

    console.print(str(add_new_items(run, items, neighbours=neighbours)), highlight=False)


@app.command()
@user_errors_as_one_line
def serve(
    run: Annotated[Path, typer.Argument(help="run folder written by `auxrec train`")],
    host: Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve a trained run: a web page at /, POST /recommend, GET /items/{id}, /health, /docs."""
    try:
        from auxrec.serving.service import serve_run
    except ImportError as error:  # fastapi or uvicorn missing
        raise ConfigError(f"auxrec serve needs the serve extra ({error}): pip install 'auxrec[serve]'") from None

    serve_run(run, host=host, port=port, log=lambda text: console.print(text, highlight=False))


@app.command()
@user_errors_as_one_line
def export(
    run: Annotated[Path, typer.Argument(help="run folder written by `auxrec train`")],
    onnx: Annotated[Path | None, typer.Option(help="ONNX file to write (default: RUN.onnx beside the run folder)")]
    = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    top_k: Annotated[int, typer.Option(help="width of the top_scores/top_ids outputs (capped at the item count)")] = 100,
    check_users: Annotated[int, typer.Option(
        help="test users scored by both torch and onnxruntime before the file is kept (0 = all)")] = 10_000,
) -> None:
    """Export a trained run's scoring to ONNX (+ a JSON sidecar with the id maps), checked against torch."""
    from auxrec.serving.onnx_export import export_onnx

    if top_k < 1 or check_users < 0:
        raise ConfigError("--top-k must be at least 1 and --check-users at least 0")
    if onnx is None:
        onnx = run.resolve().with_name(f"{run.resolve().name}.onnx")
    report = export_onnx(run, onnx, overwrite=overwrite, top_k=top_k, check_users=check_users or None)
    console.print(str(report), highlight=False)


def _print_reproduction_status(spec: Any, target: str, seeds: int | None, workdir: Path, reports: Path,
                               jobs: int = 1) -> None:
    from auxrec.experiments.plan import SeedCounts, expand_targets
    from auxrec.experiments.reproduce import Reproduction
    from auxrec.experiments.status import STATES, training_time_left
    from auxrec.io import folder_holder

    targets = expand_targets([t.strip() for t in target.split(",") if t.strip()])
    entries = Reproduction(spec, workdir, reports, progress=False).status(targets, SeedCounts.from_spec(spec, seeds))
    table = Table(title=f"{spec.name}: {', '.join(targets)} ({workdir})")
    table.add_column("stage")
    for state in STATES:
        table.add_column(state, justify="right")
    for stage in ("tuning", "run"):
        of_stage = [e for e in entries if e.stage == stage]
        if of_stage:
            table.add_row("tuning trials" if stage == "tuning" else "runs",
                          *(str(sum(e.state == state for e in of_stage)) for state in STATES))
    console.print(table)
    holder = folder_holder(workdir)
    if holder is not None:
        console.print(f"training now: {holder} holds {workdir}", highlight=False)
    for entry in entries:
        if entry.state != "done":
            epoch = f" (epoch {entry.epoch} saved)" if entry.epoch is not None else ""
            console.print(f"{entry.state}: {entry.label} {entry.what}{epoch}", highlight=False)
    left, unknown = training_time_left(entries)
    if sum(entry.state != "done" for entry in entries) > unknown:  # some have an estimate
        # Each run's time was measured as it was trained (two at a time under --jobs 2), so
        # N jobs finish the sum in about 1/N of it, less the idle tail of the last runs.
        console.print(f"about {left / 3600:.1f} h of training left at the pace of this work folder's finished runs "
                      "of the same model (summed over runs)"
                      + (f", so about {left / jobs / 3600:.1f} h of wall time with --jobs {jobs}" if jobs > 1 else "")
                      + (f"; {unknown} more with no finished run to go by" if unknown else ""), highlight=False)
    elif unknown:
        console.print(f"{unknown} runs left; no finished run of the same models yet to estimate their time from",
                      highlight=False)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
