"""The paper's tables as data frames, rendered to Markdown, CSV and LaTeX.

Tables are built from saved run results only (`auxrec.experiments.reproduce` collects
them), so a report can be re-rendered at any time without training. The CSV holds the
plain numbers; Markdown and LaTeX mark the best value **bold** and the second best
_italic_ / underlined, per row (Table 1, like the paper's grey cells) or per column
(Table 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from auxrec.evaluation.metrics import METRIC_NAMES
from auxrec.io import write_text_atomic
from auxrec.reporting.statistics import PairedTest, paired_t_test, with_holm


@dataclass(frozen=True)
class Table:
    """A rendered table: numbers for CSV, display strings with markers for Markdown/LaTeX."""

    name: str
    caption: str
    numbers: pd.DataFrame
    cells: pd.DataFrame  # same shape, strings
    best: set[tuple[str, str]] = field(default_factory=set)  # (row, column) cells in bold
    second: set[tuple[str, str]] = field(default_factory=set)
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        header = "| " + " | ".join([self.numbers.index.name or "", *map(str, self.cells.columns)]) + " |"
        lines = [f"**{self.caption}**", "", header, "|" + "---|" * (len(self.cells.columns) + 1)]
        for row in self.cells.index:
            values = [self._mark(row, column, self.cells.at[row, column], "**", "_") for column in self.cells.columns]
            lines.append("| " + " | ".join([str(row), *values]) + " |")
        lines += [""] + [f"{note}  " for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def latex(self) -> str:
        columns = "l" + "r" * len(self.cells.columns)
        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{_latex_escape(self.caption)}}}",
                 f"\\begin{{tabular}}{{{columns}}}", "\\toprule",
                 " & ".join([_latex_escape(self.numbers.index.name or ""),
                             *(_latex_escape(str(c)) for c in self.cells.columns)]) + " \\\\", "\\midrule"]
        for row in self.cells.index:
            values = [_latex_escape(str(self.cells.at[row, column])) for column in self.cells.columns]
            values = [self._latex_mark(row, column, value) for column, value in zip(self.cells.columns, values)]
            lines.append(" & ".join([_latex_escape(str(row)), *values]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"\\\\[2pt]\\footnotesize {_latex_escape(note)}" for note in self.notes]
        lines += ["\\end{table}"]
        return "\n".join(lines) + "\n"

    def _mark(self, row: str, column: str, text: str, bold: str, italic: str) -> str:
        if (row, column) in self.best:
            return f"{bold}{text}{bold}"
        if (row, column) in self.second:
            return f"{italic}{text}{italic}"
        return str(text)

    def _latex_mark(self, row: str, column: str, text: str) -> str:
        if (row, column) in self.best:
            return f"\\textbf{{{text}}}"
        if (row, column) in self.second:
            return f"\\underline{{{text}}}"
        return text

    def write(self, directory: Path) -> list[Path]:
        """``NAME.md``, ``NAME.csv`` and ``NAME.tex`` in ``directory``, each written atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in ((".md", self.markdown()), (".csv", self.numbers.to_csv()), (".tex", self.latex())):
            path = directory / f"{self.name}{suffix}"
            write_text_atomic(path, text)
            paths.append(path)
        return paths


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    escaped = "".join(_LATEX_SPECIAL.get(character, character) for character in text)
    return escaped.replace("±", r"$\pm$").replace("−", "-")


def _top_two(values: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """Keys holding the best and the second-best value (ties share a rank)."""
    finite = sorted({v for v in values.values() if v is not None and math.isfinite(v)}, reverse=True)
    best = [k for k, v in values.items() if finite and v == finite[0]]
    second = [k for k, v in values.items() if len(finite) > 1 and v == finite[1]]
    return best, second


def _marked(numbers: pd.DataFrame, per_row: bool) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(row, column) cells holding the best and second-best value of each row (or column)."""
    best: set[tuple[str, str]] = set()
    second: set[tuple[str, str]] = set()
    groups = numbers.iterrows() if per_row else numbers.items()
    for name, series in groups:
        top, runner_up = _top_two({key: float(value) for key, value in series.items()})
        best |= {(name, key) if per_row else (key, name) for key in top}
        second |= {(name, key) if per_row else (key, name) for key in runner_up}
    return best, second


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def table1(
    name: str, caption: str, means: Mapping[str, Mapping[str, float]], baselines: Sequence[str],
    proposed: str = "SASRec+", stds: Mapping[str, Mapping[str, float]] | None = None,
) -> Table:
    """Metrics × models, top two per row marked, and the improvement of ``proposed`` (%).

    ``means[label][metric]``; models missing from ``means`` are left out. The improvement
    is relative to the best *baseline* in each row (the paper's footnote b).
    """
    labels = list(means)
    numbers = pd.DataFrame({label: [means[label].get(m, math.nan) for m in METRIC_NAMES] for label in labels},
                           index=pd.Index(METRIC_NAMES, name="metric"))
    cells = numbers.map(_number).astype(object)
    if stds:
        for label in labels:
            for metric in METRIC_NAMES:
                spread = stds.get(label, {}).get(metric)
                if spread is not None and math.isfinite(spread) and spread > 0:
                    cells.at[metric, label] = f"{numbers.at[metric, label]:.4f} ± {spread:.4f}"
    best, second = _marked(numbers, per_row=True)
    present_baselines = [b for b in baselines if b in labels]
    with_spread = any("±" in str(cell) for cell in cells.to_numpy().ravel())
    notes = [f"Best per row in bold, second in italics. Mean over seeds{'; ± one standard deviation' if with_spread else ''}."]
    if proposed in labels and present_baselines:
        column = []
        for metric in METRIC_NAMES:
            reference = numbers.loc[metric, present_baselines].max()
            column.append(100.0 * (numbers.at[metric, proposed] - reference) / reference if reference > 0 else math.nan)
        numbers["Improve (%)"] = column
        cells["Improve (%)"] = [("–" if not math.isfinite(v) else f"{v:+.1f} %") for v in column]
        notes.append(f"Improve: {proposed} against the best of {', '.join(present_baselines)} in each row.")
    return Table(name, caption, numbers, cells, best, second, tuple(notes))


def table2(
    name: str, caption: str, per_seed: Mapping[str, Mapping[int, float]], pairs: Sequence[tuple[str, str]],
    confidence: float = 0.95,
) -> tuple[Table, dict[str, PairedTest]]:
    """Paired t-tests of each (without, with) pair over the seeds both have (the paper's Table 2).

    The pairs present form one family of tests: each test's p-value is also given
    Holm-adjusted over the family's k tests with a p-value (`holm`), in the row
    "Holm-adjusted p (k tests)" and as ``PairedTest.p_holm``.
    """
    tests: dict[str, PairedTest] = {}
    present: list[tuple[str, str]] = []
    for without, with_aux in pairs:
        if without not in per_seed or with_aux not in per_seed:
            continue
        seeds = sorted(set(per_seed[without]) & set(per_seed[with_aux]))
        tests[with_aux] = paired_t_test([per_seed[without][s] for s in seeds],
                                        [per_seed[with_aux][s] for s in seeds], confidence)
        present.append((without, with_aux))
    tests = with_holm(tests)
    family = sum(math.isfinite(test.p_holm) for test in tests.values())
    rows = ["Mean", "Standard deviation", "Observations", "Degrees of freedom", "t statistic", "p-value",
            f"Holm-adjusted p ({family} test{'s' if family != 1 else ''})", "Mean difference",
            f"{confidence:.0%} CI of the difference"]
    numbers = pd.DataFrame(index=pd.Index(rows, name="NDCG@10"), dtype=object)
    cells = pd.DataFrame(index=numbers.index, dtype=object)
    for without, with_aux in present:
        test = tests[with_aux]
        blank = [math.nan] * len(rows)
        numbers[without] = [test.mean_without, test.std_without] + blank[2:]
        numbers[with_aux] = [test.mean_with, test.std_with, test.n, test.dof, test.t, test.p, test.p_holm,
                             test.mean_difference, f"[{test.ci_low:.4f}, {test.ci_high:.4f}]"]
        cells[without] = [_number(test.mean_without), _number(test.std_without)] + [""] * (len(rows) - 2)
        cells[with_aux] = [_number(test.mean_with), _number(test.std_with), str(test.n), str(test.dof),
                           _number(test.t, 3), _p_value(test.p), _p_value(test.p_holm),
                           f"{test.mean_difference:+.4f}", f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]"]
    notes = (("Paired by seed (same initial data order and evaluation negatives); two-sided "
              "scipy.stats.ttest_rel; the test statistics sit in the column of the variant with auxiliary "
              "information."),
             (f"Holm-adjusted p: Holm–Bonferroni step-down adjustment over the {family} test(s) of this table, "
              "controlling the family-wise error rate; compare it, not the raw p-value, with the significance "
              "level when the table is read as a whole."))
    return Table(name, caption, numbers, cells, notes=notes), tests


def _p_value(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2g}"


def table3(
    name: str, caption: str, values: Mapping[str, Mapping[str, tuple[float, float, int]]], rows: Sequence[str],
) -> Table:
    """Ablation: ``values[column][row] = (mean, std, n_seeds)``; top two per column marked."""
    columns = list(values)
    numbers = pd.DataFrame({c: [values[c].get(r, (math.nan, math.nan, 0))[0] for r in rows] for c in columns},
                           index=pd.Index(list(rows), name="variant"))
    cells = numbers.map(lambda v: _number(v, 5)).astype(object)
    for column in columns:
        for row in rows:
            mean, std, n = values[column].get(row, (math.nan, math.nan, 0))
            if n > 1 and math.isfinite(std):
                cells.at[row, column] = f"{mean:.5f} ± {std:.5f}"
    best, second = _marked(numbers, per_row=False)
    n_seeds = sorted({v[2] for column in values.values() for v in column.values()})
    notes = ((f"Test NDCG@10, mean over {'/'.join(map(str, n_seeds)) or '0'} seed(s). Best per column in bold, "
              "second in italics."),)
    return Table(name, caption, numbers, cells, best, second, notes)


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


# A run's breakdown under one split and protocol: group → value → {"NDCG@10", "HR@10", "users"}
# (`auxrec.evaluation.breakdown`); the group tables read NDCG@10 from it.
Breakdown = Mapping[str, Mapping[str, Mapping[str, float | int | None]]]


def _group_rows(breakdowns: Sequence[Breakdown]) -> list[tuple[str, str]]:
    """(group, value) pairs the breakdowns hold, "all" first, in their saved order; empty groups left out."""
    rows: list[tuple[str, str]] = []
    for breakdown in breakdowns:
        for group, values in breakdown.items():
            for value, cell in values.items():
                if (group, value) not in rows and cell.get("users"):
                    rows.append((group, value))
    return sorted(rows, key=lambda row: row[0] != "all")


def _row_names(rows: Sequence[tuple[str, str]], breakdowns: Sequence[Breakdown]) -> list[str]:
    """Each (group, value) row's label, with its number of users in the first breakdown that has the group."""
    names = []
    for group, value in rows:
        first = next((b for b in breakdowns if b.get(group, {}).get(value)), None)
        users = first.get(group, {}).get(value, {}).get("users") if first else None
        name = "all" if group == "all" else f"{group}: {value}"
        names.append(name if users is None else f"{name} ({int(users):,} user{'s' if users != 1 else ''})")
    return names


def _cell(breakdown: Breakdown | None, group: str, value: str, key: str = "NDCG@10") -> float:
    found = (breakdown or {}).get(group, {}).get(value, {}).get(key)
    return math.nan if found is None else float(found)


def table1_groups(name: str, caption: str, per_seed: Mapping[str, Mapping[int, Breakdown]]) -> Table:
    """Test NDCG@10 of each model per target group (rows) × model (columns), mean ± sd over seeds.

    ``per_seed[label][seed]`` is that run's breakdown; the top two per row are marked, so a
    lead that comes from one group only (repeat purchases, popular targets) shows.
    """
    labels = [label for label in per_seed if per_seed[label]]
    every = [breakdown for label in labels for breakdown in per_seed[label].values()]
    rows = _group_rows(every)
    names = _row_names(rows, every)
    numbers = pd.DataFrame(index=pd.Index(names, name="target group"), dtype=float)
    cells = pd.DataFrame(index=numbers.index, dtype=object)
    for label in labels:
        spread = [mean_and_std([_cell(b, group, value) for b in per_seed[label].values()]) for group, value in rows]
        numbers[label] = [mean for mean, _ in spread]
        cells[label] = [_number(mean) if not (std > 0) else f"{mean:.4f} ± {std:.4f}" for mean, std in spread]
    best, second = _marked(numbers, per_row=True)
    notes = (("Test NDCG@10 per group of test targets (`auxrec breakdown`), mean over seeds ± one standard deviation; "
             "best per row in bold, second in italics. target: cold = no training interaction; popularity: terciles "
             "of the targets' training counts; history: repeated = the target is already in the user's history; "
             "novel_target: cold or warm among the novel targets only (repeat purchases are warm and easy); "
             "valid_test_time: same = the user's validation and test items share a timestamp (compare 'all' with "
             "'different' for the results without those users)."),)
    return Table(name, caption, numbers, cells, best, second, notes)


def table2_groups(
    name: str, caption: str, per_seed: Mapping[str, Mapping[int, Breakdown]], pairs: Sequence[tuple[str, str]],
) -> tuple[Table, dict[tuple[str, str, str], PairedTest]]:
    """Table 2 per target group: each (without, with) pair's means and paired difference in every group.

    The tests of the whole table (every pair and group with a p-value) are one family for
    Holm's adjustment. Returns the table and the tests by (with-label, group, value).
    """
    present = [(without, with_aux) for without, with_aux in pairs if per_seed.get(without) and per_seed.get(with_aux)]
    every = [b for pair in present for label in pair for b in per_seed[label].values()]
    rows = _group_rows(every)
    tests: dict[tuple[str, str, str], PairedTest] = {}
    for without, with_aux in present:
        seeds = sorted(set(per_seed[without]) & set(per_seed[with_aux]))
        for group, value in rows:
            tests[with_aux, group, value] = paired_t_test([_cell(per_seed[without][s], group, value) for s in seeds],
                                                          [_cell(per_seed[with_aux][s], group, value) for s in seeds])
    tests = with_holm(tests)
    names = _row_names(rows, every)
    numbers = pd.DataFrame(index=pd.Index(names, name="target group"), dtype=float)
    cells = pd.DataFrame(index=numbers.index, dtype=object)
    for without, with_aux in present:
        results = [tests[with_aux, group, value] for group, value in rows]
        difference = f"{with_aux} − {without}"
        numbers[without] = [test.mean_without for test in results]
        numbers[with_aux] = [test.mean_with for test in results]
        numbers[difference] = [test.mean_difference for test in results]
        numbers[f"{difference}: p"] = [test.p for test in results]
        numbers[f"{difference}: Holm p"] = [test.p_holm for test in results]
        cells[without] = [_number(test.mean_without) for test in results]
        cells[with_aux] = [_number(test.mean_with) for test in results]
        cells[difference] = [("–" if not math.isfinite(test.mean_difference) else
                              f"{test.mean_difference:+.4f} (p {_p_value(test.p)}, Holm {_p_value(test.p_holm)})")
                             for test in results]
    family = sum(math.isfinite(test.p_holm) for test in tests.values())
    notes = (("Test NDCG@10 per group of test targets, mean over the seeds both variants have; difference: with − "
              "without, paired t-test over seeds (two-sided), and its p-value Holm-adjusted over the "
              f"{family} tests of this table. Groups as in the group table of Table 1."),)
    return Table(name, caption, numbers, cells, notes=notes), tests
