"""The paper's experiments as data: which variants each table and figure needs, and with which seeds.

- **Table 1**: PopRec, BPR, TransRec, BERT4Rec, KeBERT4Rec, SASRec, BERT4Rec+, SASRec+;
- **Table 2**: paired t-tests of NDCG@10, BERT4Rec vs BERT4Rec+ and SASRec vs SASRec+;
- **Table 3**: the 11 modality/fusion variants of BERT4Rec+ and SASRec+, and the paper's plain fusion;
- **Figure 2**: a case study of two users; **Figure 3**: SASRec+ attention by user cluster.

Everything here is pure: nothing reads or writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auxrec.exceptions import ConfigError
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.specs import MODALITIES, ReproductionSpec
from auxrec.models import lookup
from auxrec.reporting.reproduction_report import AblationCell, PaperLayout

TARGETS = ("table1", "table2", "table3", "figure2", "figure3")
ALL_MODALITIES = MODALITIES


@dataclass(frozen=True)
class Variant:
    """One trainable configuration: a registered model, optionally with auxiliary information."""

    label: str  # as printed in reports
    model: str  # registry name
    aux: tuple[str, ...] = ()
    fusion: str | None = None  # None = the model's default (only meaningful with aux)
    tuned_as: str = ""  # whose tuned hyperparameters it uses ("" = its own label)
    # Model settings of this variant over the spec's, e.g. the paper's plain fusion, and the
    # folder-name suffix that tells its runs apart.
    settings: tuple[tuple[str, Any], ...] = ()
    suffix: str = ""

    @property
    def key(self) -> str:
        """Folder name: ``sasrec``, ``sasrec+text-image-tabular.concat``..."""
        if not self.aux:
            return self.model
        return f"{self.model}+{'-'.join(self.aux)}.{self.fusion or 'concat'}{self.suffix}"

    @property
    def tuning_label(self) -> str:
        return self.tuned_as or self.label

    @property
    def features(self) -> tuple[str, ...]:
        """The item-feature modalities it trains with: the model's required ones, then ``aux``."""
        model_class, _ = lookup(self.model)
        return tuple(dict.fromkeys([*model_class.required_features, *self.aux]))

    @property
    def expected_cost(self) -> int:
        """Rough relative training time, for scheduling only."""
        return lookup(self.model)[0].relative_cost + (1 if self.aux else 0)


@dataclass(frozen=True)
class AblationRow:
    """A row of Table 3: which modalities, fused how."""

    label: str
    aux: tuple[str, ...]
    fusion: str
    settings: tuple[tuple[str, Any], ...] = ()
    suffix: str = ""


# The paper's form of the fusion (issue 13): content on the input side only, its map starting
# random; the library's default adds content on the output side too (docs/models.md).
PAPER_FORM = (("aux_on_output", False), ("aux_init", "paper"))

TABLE1 = (
    Variant("PopRec", "poprec"),
    Variant("BPR", "bpr"),
    Variant("TransRec", "transrec"),
    Variant("BERT4Rec", "bert4rec"),
    Variant("KeBERT4Rec", "kebert4rec"),
    Variant("SASRec", "sasrec"),
    Variant("BERT4Rec+", "bert4rec", ALL_MODALITIES, "concat"),
    Variant("SASRec+", "sasrec", ALL_MODALITIES, "concat"),
)
BASELINES = ("PopRec", "BPR", "TransRec", "BERT4Rec", "KeBERT4Rec", "SASRec")
PAIRS = (("BERT4Rec", "BERT4Rec+"), ("SASRec", "SASRec+"))
UNTUNED = ("PopRec",)  # no hyperparameters to search
ABLATION_ROWS = (
    AblationRow("(1) Text", ("text",), "concat"),
    AblationRow("(2) Image", ("image",), "concat"),
    AblationRow("(3) Tabular", ("tabular",), "concat"),
    AblationRow("(4) Concatenated: text + image + tabular", ALL_MODALITIES, "concat"),
    AblationRow("(5) Concatenated: w/o tabular", ("text", "image"), "concat"),
    AblationRow("(6) Concatenated: w/o image", ("text", "tabular"), "concat"),
    AblationRow("(7) Concatenated: w/o text", ("image", "tabular"), "concat"),
    AblationRow("(8) Summed: text + image + tabular", ALL_MODALITIES, "sum"),
    AblationRow("(9) Summed: w/o tabular", ("text", "image"), "sum"),
    AblationRow("(10) Summed: w/o image", ("text", "tabular"), "sum"),
    AblationRow("(11) Summed: w/o text", ("image", "tabular"), "sum"),
    AblationRow("(12) The paper's form: concatenated, input side only", ALL_MODALITIES, "concat", PAPER_FORM,
                ".input-only"),
)
ABLATION_FAMILIES = (("BERT4Rec+", "bert4rec"), ("SASRec+", "sasrec"))  # (Table 1 label, model)
FIGURE2_MODELS = ("BERT4Rec", "BERT4Rec+", "SASRec", "SASRec+")
FIGURE3_MODEL = "SASRec+"


def table1_variant(label: str) -> Variant:
    return next(v for v in TABLE1 if v.label == label)


@dataclass(frozen=True)
class Ablation:
    """A cell of Table 3 and the variant that fills it."""

    row: str
    family: str
    variant: Variant


def ablation_variants() -> list[Ablation]:
    """Every cell of Table 3; row (4) is the family's own Table 1 variant."""
    cells = []
    for family, model in ABLATION_FAMILIES:
        for row in ABLATION_ROWS:
            variant = Variant(f"{family} {row.label}", model, row.aux, row.fusion, tuned_as=family,
                              settings=row.settings, suffix=row.suffix)
            if row.aux == ALL_MODALITIES and row.fusion == "concat" and not row.settings:
                variant = table1_variant(family)
            cells.append(Ablation(row.label, family, variant))
    return cells


def paper_layout() -> PaperLayout:
    """The runs (by label) of each table and figure, for `auxrec.reporting.reproduction_report`."""
    return PaperLayout(
        table1=tuple(v.label for v in TABLE1), baselines=BASELINES, pairs=PAIRS,
        ablation_rows=tuple(row.label for row in ABLATION_ROWS),
        ablation=tuple(AblationCell(cell.row, cell.family, cell.variant.label) for cell in ablation_variants()),
        figure2=FIGURE2_MODELS, figure3=FIGURE3_MODEL,
    )


@dataclass(frozen=True)
class SeedCounts:
    """Seeds 0..n-1 of each table."""

    table1: int
    table2: int
    table3: int

    @classmethod
    def from_spec(cls, spec: ReproductionSpec, override: int | None) -> SeedCounts:
        seeds = spec.seeds
        if override is None:
            return cls(seeds.table1, seeds.table2, seeds.table3)
        if override < 1:
            raise ConfigError("--seeds must be at least 1")
        return cls(min(seeds.table1, override), override, min(seeds.table3, override))


def expand_targets(targets: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    for target in targets:
        if target == "all":
            chosen += TARGETS
        elif target in TARGETS:
            chosen.append(target)
        else:
            raise ConfigError(f"unknown target {target!r}; choose from {', '.join(TARGETS)} or all")
    return list(dict.fromkeys(chosen))


@dataclass(frozen=True)
class PlannedRun:
    variant: Variant
    seed: int


def planned_runs(targets: Sequence[str], seeds: SeedCounts) -> list[PlannedRun]:
    """Every (variant, seed) the targets need, each once, in a sensible training order."""
    plan: list[PlannedRun] = []
    if "table1" in targets:
        plan += [PlannedRun(v, s) for s in range(seeds.table1) for v in TABLE1]
    if "table2" in targets:
        plan += [PlannedRun(table1_variant(label), s) for s in range(seeds.table2) for pair in PAIRS
                 for label in pair]
    if "table3" in targets:
        plan += [PlannedRun(cell.variant, s) for s in range(seeds.table3) for cell in ablation_variants()]
    if "figure2" in targets:
        plan += [PlannedRun(table1_variant(label), 0) for label in FIGURE2_MODELS]
    if "figure3" in targets:
        plan += [PlannedRun(table1_variant(FIGURE3_MODEL), 0)]
    return list(dict.fromkeys(plan))


def tuning_labels(plan: Sequence[PlannedRun]) -> list[str]:
    """Whose tuned values the planned runs use, in plan order."""
    return list(dict.fromkeys(run.variant.tuning_label for run in plan))


@dataclass(frozen=True)
class RunRequest:
    """A run to reuse or train: ``variant`` with ``seed`` and the tuned training ``values``, in ``folder``."""

    variant: Variant
    seed: int
    values: dict[str, Any]  # training settings chosen by tuning ({} when untuned)
    protocols: tuple[str, ...]  # evaluated under each
    folder: RunFolder
