"""A trained run's scoring as an ONNX graph, to serve it without Python, torch or auxrec.

``auxrec export RUN --onnx model.onnx`` (`export_onnx`) writes two files:

- ``model.onnx``: one graph, weights included (and, for SASRec+/BERT4Rec+, the item
  feature matrices the fusion carries), with a dynamic batch axis;
- ``model.onnx.json``, the sidecar: what the graph reads and returns, and the id maps.

Ids. The graph works with internal ids. The sidecar's ``items`` list maps them: the
original id of internal item id i is ``items[i]``; ``items[0]`` is null (padding, id 0).
The same index is used on the way in (history items) and out (columns of ``scores``,
values of ``top_ids``). Models that learn a vector per user (bpr, transrec) also get a
``users`` list, ``users[u]`` = original id of internal user id u.

Inputs, all int64 (only those the model reads; the sidecar's ``inputs`` lists them):

- ``sequences`` (batch, history_length): internal ids of each user's most recent items,
  oldest first, **left-padded** with 0 so the most recent item is in the last column
  (sasrec, bert4rec, kebert4rec; transrec reads one item, its last);
- ``users`` (batch,): internal user ids (bpr, transrec). PopRec reads only the batch size
  from it (any values, e.g. zeros): its scores are the same for everyone.

Outputs:

- ``scores`` (batch, n_items + 1) float32: column i scores internal item id i, higher =
  more likely next; column 0 (padding) is -inf so that it never ranks;
- ``top_scores`` (batch, top_k) float32 and ``top_ids`` (batch, top_k) int64: the best
  ``top_k`` internal ids, best first (``top_k`` = min(100, n_items) unless asked
  otherwise; it is fixed in the graph and recorded in the sidecar). History items are
  **not** excluded (the Python API's ``exclude_seen``): to exclude them, set their
  columns of ``scores`` to -inf and take the top-k of that.

The graph reproduces `Recommender.score`: transformers read the whole padded window
instead of dropping all-padding columns first (`auxrec.models.transformer.trim_padding`,
a data-dependent shape the exporter cannot trace); padding attends only to itself, so the
result is the same up to float rounding. BERT4Rec appends its [MASK] inside the graph.

Verification. Before the file appears, onnxruntime scores the run's test users (their
test-time histories, as evaluation builds them; at most ``check_users`` of them, evenly
spread) and the result is compared with the torch model's: the top-10 items must agree
for at least 99.9 % of the users (allowing reorders between items whose torch scores tie
within 1e-4 of the score scale), no score may differ by more than 1e-3 of the score
scale, and ``top_ids``/``top_scores`` must be exactly the top of ``scores``. Otherwise
`ExportMismatch` is raised and nothing is written (an existing file being replaced is kept).

The files are written under temporary names and renamed when complete (sidecar first),
so an interrupted export leaves no half-written model. Needs the ``export`` extra
(onnx, onnxscript, onnxruntime): torch's ONNX exporter (``dynamo=True``, the default
since torch 2.9) translates through onnxscript.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from auxrec.data.ids import PADDING_ID
from auxrec.evaluation.evaluator import user_histories
from auxrec.exceptions import AuxrecError
from auxrec.io import atomic_output, write_json_atomic
from auxrec.models.bert4rec import BERT4Rec
from auxrec.models.transrec import unit_ball
from auxrec.serving.trained_model import TrainedModel, load_run

OPSET = 18  # the torch.export-based exporter's native opset; onnxruntime >= 1.14 runs it
TOP_K = 100  # width of the top_scores / top_ids outputs (capped at n_items)
CHECK_USERS = 10_000  # test users scored by both torch and onnxruntime before the file is kept
COMPARED_TOP = 10  # the top-k of the scores output whose agreement with torch is checked
MIN_AGREEMENT = 0.999  # share of checked users whose top-10 must agree
TIE_TOLERANCE = 1e-4  # scores this close (relative to the score scale) are ties: their order may differ
SCORE_TOLERANCE = 1e-3  # largest accepted |torch - onnx| score difference, relative to the score scale
SIDECAR_FORMAT = "auxrec-onnx"
SIDECAR_VERSION = 1
CHUNK = 256  # users scored at a time while checking


class ExportError(AuxrecError):
    """An ONNX export that cannot be done (output path, missing packages, unsupported model)."""


class ExportMismatch(ExportError):
    """The exported graph's scores disagree with the torch model's; nothing was written."""


@dataclass(frozen=True)
class ExportReport:
    """What `export_onnx` wrote and how the exported graph compared with torch."""

    path: Path
    sidecar: Path
    size_bytes: int
    model: str  # e.g. "sasrec+text,image,tabular"
    inputs: list[dict[str, Any]]
    top_k: int
    users_checked: int
    test_users: int
    max_abs_difference: float  # largest |torch - onnxruntime| over the checked users' scores
    top10_identical: float  # share of checked users whose top-10 lists are identical, in order
    top10_agreement: float  # the same, allowing reorders among tied scores (the criterion)
    seconds: float

    def __str__(self) -> str:
        inputs = ", ".join(f"{i['name']} ({' × '.join(map(str, i['shape']))} int64)" for i in self.inputs)
        return "\n".join([
            f"exported {self.model} → {self.path} ({_size(self.size_bytes)}; ids and shapes in {self.sidecar.name})",
            f"  inputs: {inputs}; outputs: scores (batch × n_items + 1), top_scores and top_ids (batch × {self.top_k})",
            f"  checked with onnxruntime on {self.users_checked:,} of {self.test_users:,} test users: top-10 "
            f"identical for {self.top10_identical:.1%} ({self.top10_agreement:.1%} up to tied scores), "
            f"max |Δscore| {self.max_abs_difference:.2g} ({self.seconds:.1f} s)",
        ])


# -- the graphs ------------------------------------------------------------------------
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # scores, top_scores, top_ids


class _Scorer(nn.Module):
    """Base of the exported graphs: ``forward(<input_names>)`` → (scores, top_scores, top_ids)."""

    input_names: tuple[str, ...]  # forward's arguments, in order

    def __init__(self, n_items: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.register_buffer("padding_column", torch.arange(n_items + 1) == PADDING_ID)  # (n_items + 1,)

    def outputs(self, scores: torch.Tensor) -> Outputs:
        """(B, n_items + 1) raw scores → the graph's outputs (padding column at -inf, then the top-k)."""
        scores = scores.float().masked_fill(self.padding_column, float("-inf"))
        top = torch.topk(scores, self.top_k, dim=1)
        return scores, top.values, top.indices


class _TransformerScorer(_Scorer):
    """SASRec(+), BERT4Rec(+), KeBERT4Rec: the state after the history scores every item."""

    input_names = ("sequences",)

    def __init__(self, model: Any, top_k: int) -> None:
        super().__init__(model.n_items, top_k)
        self.model = model
        self.mask_id: int | None = model.mask_id if isinstance(model, BERT4Rec) else None

    def forward(self, sequences: torch.Tensor) -> Outputs:  # (B, L)
        if self.mask_id is not None:
            # BERT4Rec.user_states: the last max_length - 1 items, then one [MASK] whose state scores.
            start = max(sequences.shape[1] - (self.model.config.max_length - 1), 0)
            mask_column = torch.full_like(sequences[:, :1], self.mask_id)  # (B, 1)
            sequences = torch.cat([sequences[:, start:], mask_column], dim=1)
        hidden, _ = self.model.encode(sequences)  # (B, L', d); untrimmed padding attends only to itself
        return self.outputs(hidden[:, -1] @ self.model.output_embeddings().T)  # (B, n_items + 1)


class _BPRScorer(_Scorer):
    input_names = ("users",)

    def __init__(self, model: Any, top_k: int) -> None:
        super().__init__(model.n_items, top_k)
        self.model = model

    def forward(self, users: torch.Tensor) -> Outputs:  # (B,)
        model = self.model
        return self.outputs(model.user_embedding(users) @ model.item_embedding.weight.T + model.item_bias.weight.T)


class _TransRecScorer(_Scorer):
    input_names = ("users", "sequences")

    def __init__(self, model: Any, top_k: int) -> None:
        super().__init__(model.n_items, top_k)
        self.model = model

    def forward(self, users: torch.Tensor, sequences: torch.Tensor) -> Outputs:  # (B,), (B, 1)
        model = self.model
        anchor = model._translated(users, sequences[:, -1])  # (B, d)
        points = unit_ball(model.item_embedding.weight)  # (n_items + 1, d)
        distances = anchor.pow(2).sum(-1, keepdim=True) - 2 * anchor @ points.T + points.pow(2).sum(-1)
        return self.outputs(model.item_bias.weight.T - distances)  # (B, n_items + 1)


class _PopRecScorer(_Scorer):
    input_names = ("users",)

    def __init__(self, model: Any, top_k: int) -> None:
        super().__init__(model.n_items, top_k)
        self.register_buffer("counts", model.item_counts_.float().clone())  # (n_items + 1,)

    def forward(self, users: torch.Tensor) -> Outputs:  # (B,): only the batch size is read
        return self.outputs(self.counts.expand(users.shape[0], -1))


# Which graph each registered model exports to (declared, not sniffed).
SCORERS: dict[str, type[_Scorer]] = {
    "sasrec": _TransformerScorer,
    "bert4rec": _TransformerScorer,
    "kebert4rec": _TransformerScorer,
    "bpr": _BPRScorer,
    "transrec": _TransRecScorer,
    "poprec": _PopRecScorer,
}

INPUT_MEANINGS = {
    "sequences": "internal item ids of the most recent items, oldest first, left-padded with 0",
    "users": "internal user ids (index into the sidecar's users list)",
}


def _input_specs(scorer: _Scorer, model: Any) -> list[dict[str, Any]]:
    specs = []
    for name in scorer.input_names:
        if name == "sequences":
            shape: list[Any] = ["batch", int(model.history_length)]
            meaning = INPUT_MEANINGS[name]
        else:
            shape = ["batch"]
            meaning = ("any values (e.g. zeros): PopRec reads only the batch size" if isinstance(scorer, _PopRecScorer)
                       else INPUT_MEANINGS[name])
        specs.append({"name": name, "dtype": "int64", "shape": shape, "meaning": meaning})
    return specs


# -- export ----------------------------------------------------------------------------
def export_onnx(run_dir: Path | str, path: Path | str, overwrite: bool = False, opset: int = OPSET,
                top_k: int = TOP_K, check_users: int | None = CHECK_USERS) -> ExportReport:
    """Export the scoring of the finished run ``run_dir`` to the ONNX file ``path`` (see the module docstring).

    ``check_users``: how many test users (evenly spread) onnxruntime and torch both score
    before the file is kept; None or 0 = all of them.
    """
    started = time.perf_counter()
    path, sidecar = Path(path), Path(f"{path}.json")
    _check_destination(path, sidecar, overwrite)
    _check_packages()
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ExportError(f"top_k must be a whole number of at least 1, not {top_k!r}")
    trained = load_run(run_dir)
    model = trained.model
    if model.name not in SCORERS:
        raise ExportError(f"no ONNX export for model {model.name!r}; exportable: {', '.join(sorted(SCORERS))}")
    if isinstance(model, nn.Module):
        model.eval()
    k = min(top_k, trained.n_items)
    scorer = SCORERS[model.name](model, k).eval()
    inputs = _input_specs(scorer, model)
    users, histories = _checked_users(trained, check_users)
    try:
        with atomic_output(path, suffix=".onnx") as temporary:
            _export(scorer, inputs, temporary, opset)
            check = _compare(trained, temporary, users, histories, k)
            write_json_atomic(sidecar, _sidecar(trained, path, inputs, k, opset, check))
    except (PermissionError, IsADirectoryError, NotADirectoryError) as error:
        raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
    return ExportReport(path=path, sidecar=sidecar, size_bytes=path.stat().st_size, model=trained.name,
                        inputs=inputs, top_k=k, users_checked=check["users_checked"],
                        test_users=check["test_users"], max_abs_difference=check["max_abs_difference"],
                        top10_identical=check["top10_identical"], top10_agreement=check["top10_agreement"],
                        seconds=time.perf_counter() - started)


def _check_destination(path: Path, sidecar: Path, overwrite: bool) -> None:
    """Refuse, before any work, a destination that would lose something or cannot be written."""
    if path.is_dir():
        raise ExportError(f"{path} is a folder; --onnx takes a file name such as {path / 'model.onnx'}")
    if sidecar.is_dir():
        raise ExportError(f"{sidecar} is a folder; the export writes its sidecar there, so give another --onnx name")
    for target in (path, sidecar):
        if target.exists() and not overwrite:
            raise ExportError(f"{target} exists; pass --overwrite to replace it")
    if overwrite and path.exists() and not _is_sidecar(sidecar):
        # --overwrite replaces only what an export wrote (it leaves its sidecar), never another file.
        raise ExportError(f"{path} exists and was not written by `auxrec export` (no {sidecar.name} sidecar beside "
                          "it); --overwrite replaces only an earlier export, so move or delete it yourself")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # atomic_output creates the missing folders below the nearest existing one
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: no permission to write in {folder}")


def _is_sidecar(path: Path) -> bool:
    try:
        return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("format") == SIDECAR_FORMAT
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def _check_packages() -> None:
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'auxrec[export]'")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines and warnings (missing torchvision ops, deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _example_inputs(inputs: list[dict[str, Any]], batch: int = 2) -> tuple[torch.Tensor, ...]:
    # Two rows: a batch of one would let the exporter specialise the batch axis to 1.
    return tuple(torch.zeros((batch, *spec["shape"][1:]), dtype=torch.long) for spec in inputs)


def _export(scorer: _Scorer, inputs: list[dict[str, Any]], destination: Path, opset: int) -> None:
    batch = torch.export.Dim("batch")
    dynamic = {spec["name"]: {0: batch} for spec in inputs}
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(scorer, _example_inputs(inputs), str(destination), dynamo=True, verbose=False,
                          input_names=[spec["name"] for spec in inputs],
                          output_names=["scores", "top_scores", "top_ids"], dynamic_shapes=dynamic,
                          opset_version=opset, external_data=False)


def _checked_users(trained: TrainedModel, check_users: int | None) -> tuple[np.ndarray, Any]:
    """The test users to score (at most ``check_users``, evenly spread) and their test-time histories."""
    users, _ = trained.dataset.targets("test")
    if check_users and len(users) > check_users:
        users = users[np.unique(np.linspace(0, len(users) - 1, check_users).round().astype(np.int64))]
    return users, trained.dataset.history("test")


def _compare(trained: TrainedModel, onnx_path: Path, users: np.ndarray, history: Any, k: int) -> dict[str, Any]:
    """Score ``users`` with torch (`Recommender.score`) and onnxruntime; raise `ExportMismatch` if they differ."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    worst, identical, agreeing, scale, consistent = 0.0, 0, 0, 1.0, True
    disagreeing: list[int] = []
    for start in range(0, len(users), CHUNK):
        batch = user_histories(trained.model, history, users[start:start + CHUNK])
        with torch.no_grad():
            expected = trained.model.score(batch).float().cpu().numpy()  # (B, n_items + 1)
        expected[:, PADDING_ID] = -np.inf
        feeds = {"users": np.asarray(batch.users, np.int64), "sequences": np.asarray(batch.sequences, np.int64)}
        scores, top_scores, top_ids = session.run(None, {name: feeds[name] for name in input_names})
        real = expected[:, 1:]
        scale = max(scale, float(np.abs(real).max(initial=0.0)))
        difference = np.abs(scores[:, 1:].astype(np.float64) - real)
        worst = max(worst, float(np.nan_to_num(difference, nan=np.inf).max(initial=0.0)))
        # The top_k outputs are the top of the scores output (same engine: exact).
        consistent &= bool(np.array_equal(np.take_along_axis(scores, top_ids, axis=1), top_scores)
                           and np.array_equal(top_scores, -np.sort(-scores, axis=1)[:, :k]))
        expected_top = np.argsort(-expected, axis=1, kind="stable")[:, :COMPARED_TOP]  # (B, 10)
        exported_top = np.argsort(-scores, axis=1, kind="stable")[:, :COMPARED_TOP]
        identical += int((expected_top == exported_top).all(axis=1).sum())
        # Up to ties: the torch scores of the items onnxruntime ranks first are torch's top scores.
        best = np.take_along_axis(expected, expected_top, axis=1)
        picked = -np.sort(-np.take_along_axis(expected, exported_top, axis=1), axis=1)
        agree = (np.abs(picked - best) <= TIE_TOLERANCE * max(1.0, float(np.abs(best).max(initial=0.0)))).all(axis=1)
        agreeing += int(agree.sum())
        disagreeing += [int(u) for u in batch.users[~agree][:5]]
    checked = len(users)
    result = {"test_users": int(len(trained.dataset.targets("test")[0])), "users_checked": int(checked),
              "max_abs_difference": worst, "score_scale": scale,
              "top10_identical": identical / checked if checked else 1.0,
              "top10_agreement": agreeing / checked if checked else 1.0}
    if not consistent:
        raise ExportMismatch("the exported graph's top_ids/top_scores are not the top of its scores output; "
                             "nothing was written. This is a bug in auxrec's ONNX export: please report it")
    if result["top10_agreement"] < MIN_AGREEMENT or not worst <= SCORE_TOLERANCE * scale:
        raise ExportMismatch(
            f"the exported graph disagrees with the torch model: top-10 agrees for {result['top10_agreement']:.2%} of "
            f"{checked:,} test users (needs {MIN_AGREEMENT:.1%}), max |Δscore| {worst:.3g} (scores up to {scale:.3g}"
            f"{'; first users that differ: ' + ', '.join(map(str, disagreeing[:5])) if disagreeing else ''}); "
            "nothing was written. This is a bug in auxrec's ONNX export: please report it with the run's config.json")
    return result


def _sidecar(trained: TrainedModel, path: Path, inputs: list[dict[str, Any]], k: int, opset: int,
             check: dict[str, Any]) -> dict[str, Any]:
    model = trained.model
    needs_users = any(spec["name"] == "users" for spec in inputs) and model.name != "poprec"
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "onnx_file": path.name,
        "model": trained.config["model"],
        "name": trained.name,
        "run": str(trained.run_dir.resolve()),
        "dataset": {"name": trained.dataset.name, "fingerprint": trained.dataset.fingerprint},
        "opset": opset,
        "inputs": inputs,
        "outputs": [
            {"name": "scores", "dtype": "float32", "shape": ["batch", trained.n_items + 1],
             "meaning": "column i scores internal item id i (higher = more likely next); column 0 is -inf"},
            {"name": "top_scores", "dtype": "float32", "shape": ["batch", k], "meaning": "the best scores, best first"},
            {"name": "top_ids", "dtype": "int64", "shape": ["batch", k],
             "meaning": "internal item ids of top_scores (history items not excluded)"},
        ],
        "history_length": int(model.history_length),
        "padding_id": PADDING_ID,
        "top_k": k,
        "scores_new_histories": bool(type(model).scores_new_histories),
        "items": [None, *trained.item_ids.tolist()],  # items[i]: original id of internal id i
        **({"users": [None, *trained.user_ids.tolist()]} if needs_users else {}),
        "verification": {key: check[key] for key in
                         ("users_checked", "test_users", "max_abs_difference", "top10_identical", "top10_agreement")},
    }


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024  # type: ignore[assignment]
    return ""
