"""The comparison report: per loss and metric the mean, std and 95 % Student-t confidence
interval over seeds (losszoo.evaluation.stats; clipped to [0, 100] and marked where it passes a
bound), the mark of losses statistically indistinguishable from the best (on ``MARK_METRIC``:
paired t-tests, Holm-corrected; no test and no mark with one seed), a "not converged" flag per
run, and a caption saying how the table was obtained and which test it used; as a rich table,
results.json, results.csv, results.md, and the figures (losszoo.training.figures)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from losszoo.evaluation.results import BINARY_PREFIX, MAP_AT_R, NMI, binary_key, recall_key
from losszoo.evaluation.stats import ALPHA, CORRECTION, MIN_SEEDS, TEST, compare_to_best, estimate
from losszoo.training.checkpoint import write_json, write_text
from losszoo.training.records import UNTRAINED, RunRecord

MARK_METRIC = MAP_AT_R  # the metric the "indistinguishable from best" mark is computed on
# A run is "not converged" when its validation metric rose by more than this between the first
# and the last of its last CONVERGENCE_WINDOW evaluations (0.01 = 1 point of MAP@R). Three
# evaluations (two epochs when scored every epoch): over one epoch, a schedule that ends at
# lr / 100 looks flat even when 3 more epochs add 5-9 points (docs/compare-omniglot.md).
CONVERGENCE_METRIC = MAP_AT_R
CONVERGENCE_THRESHOLD = 0.01
CONVERGENCE_WINDOW = 3
CLIPPED = "†"  # marks a confidence interval clipped to [0, 100]
METRIC_BOUNDS = (0.0, 1.0)  # every retrieval metric is a fraction


def metric_label(key: str) -> str:
    """A metric's name in words: ``map_at_r`` -> ``MAP@R``, ``binary/recall@1`` -> ``binary R@1``."""
    base = key.removeprefix(BINARY_PREFIX)
    label = {MAP_AT_R: "MAP@R", NMI: "NMI"}.get(base) or base.replace(recall_key(""), "R@")
    return ("binary " if key != base else "") + label


def validation_curve(record: RunRecord, metric: str = CONVERGENCE_METRIC) -> list[tuple[int, float]]:
    """(epoch, validation metric) pairs of one run's history."""
    scored = [(entry.epoch, entry.validation.scalars()) for entry in record.history if entry.validation is not None]
    return [(epoch, values[metric]) for epoch, values in scored if metric in values]


def converged(record: RunRecord, *, metric: str = CONVERGENCE_METRIC,
              threshold: float = CONVERGENCE_THRESHOLD, window: int = CONVERGENCE_WINDOW) -> bool | None:
    """False when the run's validation ``metric`` rose by more than ``threshold`` from the first
    to the last of its last ``window`` evaluations (still climbing); None with fewer than
    ``window`` evaluations."""
    return curve_converged([value for _, value in validation_curve(record, metric)],
                           threshold=threshold, window=window)


def curve_converged(curve: Sequence[float], *, threshold: float = CONVERGENCE_THRESHOLD,
                    window: int = CONVERGENCE_WINDOW) -> bool | None:
    """:func:`converged` for a bare curve (one value per evaluation, in order)."""
    if len(curve) < max(window, 2):
        return None
    return curve[-1] - curve[-window] <= threshold


def summarize(records: Sequence[RunRecord],
              tuning_curves: dict[str, Sequence[float]] | None = None) -> list[dict[str, Any]]:
    """One row per loss (in first-seen order): per metric the mean, std (None for one seed)
    and 95 % CI over its seeds; ``best`` marks losses indistinguishable from the best on
    MARK_METRIC; ``not_converged`` counts runs flagged by :func:`converged`, plus one when the
    loss's best tuning trial (``tuning_curves``: its validation curve under the same schedule,
    the only curve a protocol-"final" run has) is flagged."""
    by_loss: dict[str, list[RunRecord]] = defaultdict(list)
    diverged: dict[str, int] = defaultdict(int)  # runs stopped on a non-finite loss: no metrics
    for record in records:
        if record.is_diverged:
            diverged[record.loss] += 1
            by_loss.setdefault(record.loss, [])
        elif record.metrics is not None:
            by_loss[record.loss].append(record)
    rows = []
    for loss, runs in by_loss.items():
        row: dict[str, Any] = {"loss": loss, "seeds": len(runs), "diverged": diverged[loss]}
        if loss == UNTRAINED and pretrained_floor(runs):
            row["label"] = PRETRAINED_FLOOR
        values = [run.metrics.scalars() for run in runs]
        for key in values[0] if values else ():
            _estimate(row, key, [found[key] for found in values], METRIC_BOUNDS)
        _estimate(row, "train_seconds", [run.train_seconds for run in runs] or [0.0], (0.0, float("inf")))
        row["not_converged"] = sum(converged(run) is False for run in runs)
        row["not_converged"] += curve_converged((tuning_curves or {}).get(loss, ())) is False
        rows.append(row)
    per_loss = {loss: {run.seed: run.metrics.value(MARK_METRIC) for run in runs}
                for loss, runs in by_loss.items() if loss != UNTRAINED and runs}
    comparisons = compare_to_best(per_loss)
    tested = any(c.indistinguishable is not None for c in comparisons.values())
    for row in rows:
        found = comparisons.get(row["loss"])
        # best: True (marked *), False, or None (not tested: fewer than MIN_SEEDS matched seeds)
        row["best"] = None if found is None else (tested or None) if found.is_best else found.indistinguishable
        row["p_vs_best"] = None if found is None else found.p_value
        row["p_vs_best_holm"] = None if found is None else found.p_adjusted
    return rows


def _estimate(row: dict[str, Any], key: str, values: Sequence[float], bounds: tuple[float, float]) -> None:
    est = estimate(values, bounds=bounds)
    row[key], row[f"{key}_std"] = est.mean, est.std
    row[f"{key}_ci_low"], row[f"{key}_ci_high"] = est.ci_low, est.ci_high
    row[f"{key}_ci_clipped"] = est.clipped


# The floor row of a comparison on a pretrained backbone: its weights before fine-tuning.
PRETRAINED_FLOOR = "before fine-tuning"


def pretrained_floor(records: Sequence[RunRecord]) -> bool:
    """Whether the untrained-network records are of a backbone that loaded pretrained weights
    (their provenance says so; records written before it said nothing are taken as not)."""
    return any((r.provenance or {}).get("pretrained") for r in records if r.loss == UNTRAINED)


def floor_note(rows: Sequence[dict[str, Any]]) -> str:
    """A warning for a table in which no loss clearly beats its floor row: every trained mean on
    MARK_METRIC at or below the floor's (its 95 % CI's upper end, with 2 seeds or more)."""
    floor = next((row for row in rows if row["loss"] == UNTRAINED), None)
    trained = [row[MARK_METRIC] for row in rows if row["loss"] != UNTRAINED and row.get(MARK_METRIC) is not None]
    if floor is None or floor.get(MARK_METRIC) is None or not trained:
        return ""
    bar = floor.get(f"{MARK_METRIC}_ci_high")
    bar = floor[MARK_METRIC] if bar is None else bar
    if max(trained) > bar:
        return ""
    pretrained = floor.get("label") == PRETRAINED_FLOOR
    return (f"WARNING: no loss's mean {metric_label(MARK_METRIC)} is above the '{floor.get('label', UNTRAINED)}' row"
            f"{' (its 95 % CI)' if floor.get(f'{MARK_METRIC}_ci_high') is not None else ''}: training did not "
            "clearly improve on the network it started from"
            f"{' (check the learning rate and --freeze-bn-stats)' if pretrained else ' (check the learning rate)'}. ")


def statistics_note(rows: Sequence[dict[str, Any]]) -> str:
    """The caption's account of the cells and the test: which test and correction, or why none."""
    if all(row["seeds"] < MIN_SEEDS for row in rows if row["loss"] != UNTRAINED):
        return ("Cells: one run per loss (one seed: no std, no interval and no significance test, "
                f"which needs >= {MIN_SEEDS} seeds per loss; rerun with --seeds 3 or more).")
    clipped = any(row.get(f"{key}_ci_clipped") for row in rows for key in list(row)
                  if not key.endswith("_ci_clipped"))
    compared = sum(row.get("best") is not None for row in rows if row["loss"] != UNTRAINED) - 1
    untested = [row["loss"] for row in rows if row["loss"] != UNTRAINED and row.get("best") is None]
    note = ("Cells: mean ± std over seeds [95 % Student-t CI"
            + (f"; {CLIPPED} = clipped to [0, 100]]" if clipped else "]") + "; ")
    if compared < 1:
        return note + f"no significance test (fewer than {MIN_SEEDS} seeds matched with the best)."
    note += (f"* = statistically indistinguishable from the best mean on {metric_label(MARK_METRIC)} ({TEST}, "
             f"{CORRECTION}-corrected over the {compared} comparison(s) with the best, "
             f"adjusted p >= {ALPHA:g})")
    if untested:
        note += f"; untested (< {MIN_SEEDS} seeds matched with the best): {', '.join(untested)}"
    return note + "."


def caption(records: Sequence[RunRecord], tuning: dict[str, Any] | None = None,
            rows: Sequence[dict[str, Any]] | None = None) -> str:
    """How the table was obtained: tuned (budget, metric, split) or untuned, epochs, seeds,
    dataset, backbone, dim, losszoo version, and the statistics used (``rows``: the summary,
    computed when not given)."""
    from losszoo import __version__

    rows = summarize(records) if rows is None else rows
    trained = [r for r in records if r.loss != UNTRAINED] or list(records)
    config = trained[0].config if trained else {}
    seeds = max((sum(1 for r in trained if r.loss == loss) for loss in {r.loss for r in trained}),
                default=0)
    if tuning:
        how = (f"tuned: {tuning['trials']} trials per loss on {tuning.get('metric', MAP_AT_R)} "
               f"of class-disjoint validation classes ({tuning.get('split', 'validation split of the training classes')})")
        if tuning.get("changed"):
            how += f", but run with other {', '.join(tuning['changed'])} than tuned for"
        if tuning.get("untuned"):
            how += f"; NOT tuned (per-loss defaults, --allow-untuned): {', '.join(tuning['untuned'])}"
        if tuning.get("by_hand"):
            how += "; set by hand over the tuned values: " + ", ".join(
                f"{loss} ({', '.join(keys)})" for loss, keys in tuning["by_hand"].items())
    else:
        how = "untuned (shared settings, per-loss defaults)"
    splits = next((r.splits for r in trained if r.splits), None)
    sizes = ""
    if splits:
        sizes = " [" + ", ".join(f"{name} {s['classes']} classes / {s['images']} images"
                                 for name, s in splits.items()) + "]"
    batch = ""
    if config.get("batch_size"):
        per_class = {r.config.get("samples_per_class") for r in trained}
        per_class_text = (f"{config.get('samples_per_class')} per class" if len(per_class) <= 1
                          else "images per class set per loss")
        batch = f", batch {config['batch_size']} ({per_class_text})"
    floor = (f"Row '{PRETRAINED_FLOOR}': the pretrained backbone with the new embedding head untrained "
             "(no loss trained it). " if pretrained_floor(records) else "")
    seed_list = sorted({r.seed for r in trained})
    seed_text = f" ({', '.join(map(str, seed_list))})" if seed_list else ""
    return (f"{how}; {config.get('epochs')} epochs (+{config.get('warmup_epochs')} warm-up){batch}, "
            f"{seeds} seed(s){seed_text}, protocol {config.get('protocol')}, dataset {config.get('dataset')}"
            f"{' (first ' + str(config['max_classes']) + ' classes)' if config.get('max_classes') else ''}"
            f"{sizes}, backbone {config.get('backbone')}, dim {config.get('dim')}, losszoo {__version__}. "
            f"{floor}{floor_note(rows)}"
            f"{statistics_note(rows)} "
            f"(nc) = runs not converged (validation {metric_label(CONVERGENCE_METRIC)} "
            f"rose > {100 * CONVERGENCE_THRESHOLD:g} points over the last {CONVERGENCE_WINDOW} evaluations"
            f"{'; for protocol final runs, the best tuning trial of the same schedule' if tuning and tuning.get('curves') else ''})."
            f"{' (diverged k/n) = k of n runs stopped on a non-finite loss, left out of the cells.' if any(r.is_diverged for r in records) else ''}")


def _columns(ks: Sequence[int]) -> list[tuple[str, str]]:
    keys = [recall_key(k) for k in ks] + [NMI, MAP_AT_R, binary_key(recall_key(1)), binary_key(MAP_AT_R)]
    return [(key, metric_label(key).replace("binary", "bin")) for key in keys]


def _cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "-"
    if row.get(f"{key}_std") is None:
        return f"{100 * row[key]:.1f}"
    return (f"{100 * row[key]:.1f} ± {100 * row[f'{key}_std']:.1f} "
            f"[{100 * row[f'{key}_ci_low']:.1f}, {100 * row[f'{key}_ci_high']:.1f}]"
            + (CLIPPED if row.get(f"{key}_ci_clipped") else ""))


def _label(row: dict[str, Any]) -> str:
    label = row.get("label", row["loss"]) + (" *" if row.get("best") is True else "") \
        + (" (nc)" if row.get("not_converged") else "")
    if row.get("diverged"):
        label += f" (diverged {row['diverged']}/{row['diverged'] + row['seeds']})"
    return label + (f" ({row['settings']})" if row.get("settings") else "")


def render_table(rows: Sequence[dict[str, Any]], ks: Sequence[int], title: str | None = None) -> Table:
    # The caption is plain text: "[train 20 classes / ...]" must not be read as rich markup.
    table = Table(title="losszoo compare (%, mean ± std [95 % CI] over seeds)",
                  caption=None if title is None else escape(title))
    table.add_column("loss", style="bold", no_wrap=True,
                     min_width=max((len(_label(row)) for row in rows), default=4))
    for _, title in _columns(ks):
        table.add_column(title, justify="right")
    table.add_column("train s", justify="right")
    for row in rows:
        table.add_row(_label(row), *(_cell(row, key) for key, _ in _columns(ks)),
                      f"{row['train_seconds']:.0f}")
    return table


def to_markdown(rows: Sequence[dict[str, Any]], ks: Sequence[int], title: str | None = None) -> str:
    header = ["loss", *(title for _, title in _columns(ks)), "train s"]
    lines = ([title, ""] if title else []) + ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_label(row), *(_cell(row, key) for key, _ in _columns(ks)), f"{row['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    # One seed: the std cells stay blank (csv writes None as an empty field).
    writer.writerows(rows)
    return buffer.getvalue()


def plot(rows: Sequence[dict[str, Any]], ks: Sequence[int], output_dir: Path,
         records: Sequence[RunRecord] = (), tuning: dict[str, Any] | None = None) -> list[Path]:
    """The report's figures (losszoo.training.figures), each as PNG, SVG and PDF: Recall@K and
    MAP@R per loss, float vs binary R@1 when measured, and the per-epoch validation curves when
    the runs evaluated validation classes."""
    from losszoo.training import figures

    rows = [row for row in rows if row["seeds"]]  # a loss whose every run diverged has no curve
    caption = figures.subtitle(records, tuning) if records else ""
    paths = figures.recall_at_k(rows, ks, caption, output_dir / "recall_at_k")
    paths += figures.map_at_r(rows, caption, output_dir / "map_at_r")
    if any(binary_key(recall_key(1)) in row for row in rows):
        paths += figures.float_vs_binary(rows, caption, output_dir / "float_vs_binary_r1")
    curves = [(r, validation_curve(r)) for r in records]
    curves = [(r, c) for r, c in curves if c]
    if curves:
        paths += figures.validation_curves([r for r, _ in curves], [c for _, c in curves], caption,
                                           output_dir / "validation_curves", metric_label(CONVERGENCE_METRIC))
    return paths


def write_report(records: Sequence[RunRecord], output_dir: str | Path, *, ks: Sequence[int],
                 console: Console | None = None, tuning: dict[str, Any] | None = None,
                 provenance: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write every report file; ``tuning`` (trials, metric, split) says the settings were tuned;
    ``provenance`` (losszoo.training.provenance) goes into results.json."""
    output_dir = Path(output_dir)
    rows = summarize(records, (tuning or {}).get("curves"))
    for row in rows:  # a row not (wholly) tuned in a tuned table says so
        if row["loss"] in (tuning or {}).get("untuned", ()):
            row["settings"] = "untuned"
        elif row["loss"] in (tuning or {}).get("by_hand", {}):
            row["settings"] = "by hand"
    text = caption(records, tuning, rows)
    write_json(output_dir / "results.json", {"caption": text, "summary": rows, "runs": [record.to_dict() for record in records],
                                             "provenance": provenance})
    write_text(output_dir / "results.csv", to_csv(rows))
    write_text(output_dir / "results.md", to_markdown(rows, ks, text))
    plot(rows, ks, output_dir, records, tuning)
    if console is not None and console.is_terminal:
        console.print(render_table(rows, ks, text))
    elif console is not None:  # piped or redirected: plain Markdown, never cut to a width
        console.print(to_markdown(rows, ks, text), markup=False, highlight=False, soft_wrap=True)
    return rows
