"""The comparison's figures, drawn for a paper: each says what it shows (a subtitle naming the
dataset, backbone, dim, tuned or untuned, and seeds) and is written as PNG, SVG and PDF.

- ``recall_at_k``: Recall@K per loss; ``map_at_r``: MAP@R per loss, the metric the table ranks
  by; ``float_vs_binary_r1``: float vs sign-binarised embeddings; ``validation_curves``: each
  run's validation MAP@R per epoch (when runs scored validation classes).
- Error bars are the table's 95 % Student-t intervals over seeds (clipped to [0, 100]); none
  with one seed.
- Losses are told apart by colour *and* line style / marker / hatch: the Okabe-Ito palette
  (Okabe & Ito 2008, safe for the common colour-vision deficiencies) cycled against line styles,
  so any number of losses stays distinguishable in print and in greyscale. The untrained
  network, the floor every loss must clear, is always black, dotted and drawn on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from losszoo.evaluation.results import MAP_AT_R, binary_key, recall_key
from losszoo.training.checkpoint import atomic_write
from losszoo.training.records import UNTRAINED, RunRecord

FORMATS = ("png", "svg", "pdf")
PNG_DPI = 200
# Okabe-Ito without black (kept for the untrained floor) and yellow (unreadable on white).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
LINESTYLES = ("-", "--", "-.", (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
HATCHES = ("", "//", "..", "xx")
FLOOR = {"color": "black", "linestyle": ":", "marker": "x", "hatch": "", "zorder": 5}


@dataclass(frozen=True)
class Style:
    """How one loss is drawn: colour, line style, marker and bar hatch."""

    color: str
    linestyle: Any
    marker: str
    hatch: str
    zorder: int = 2


def styles(losses: Sequence[str]) -> dict[str, Style]:
    """A distinct :class:`Style` per loss, in order; the untrained floor gets its own."""
    trained = [loss for loss in dict.fromkeys(losses) if loss != UNTRAINED]
    chosen = {loss: Style(PALETTE[i % len(PALETTE)], LINESTYLES[i // len(PALETTE) % len(LINESTYLES)],
                          MARKERS[i % len(MARKERS)], HATCHES[i // len(PALETTE) % len(HATCHES)])
              for i, loss in enumerate(trained)}
    if UNTRAINED in losses:
        chosen[UNTRAINED] = Style(**FLOOR)
    return chosen


def subtitle(records: Sequence[RunRecord], tuning: dict[str, Any] | None = None) -> str:
    """What a figure shows: dataset, backbone, dim, tuned or untuned, seeds."""
    trained = [r for r in records if r.loss != UNTRAINED] or list(records)
    config = trained[0].config if trained else {}
    dataset = str(config.get("dataset"))
    if config.get("max_classes"):
        dataset += f" (first {config['max_classes']} classes)"
    how = f"tuned ({tuning['trials']} trials per loss)" if tuning else "untuned"
    seeds = sorted({r.seed for r in trained})
    seed_text = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
    return (f"{dataset}, {config.get('backbone')}, dim {config.get('dim')}, {how}, "
            f"{config.get('epochs')} epochs, {seed_text}")


def save_figure(fig: Any, path: str | Path) -> list[Path]:
    """``fig`` as ``path``'s PNG, SVG and PDF siblings (each written atomically)."""
    path = Path(path)
    return [atomic_write(path.with_suffix(f".{fmt}"),
                         lambda fh, fmt=fmt: fig.savefig(fh, format=fmt, dpi=PNG_DPI, bbox_inches="tight"))
            for fmt in FORMATS]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interval(row: dict[str, Any], key: str) -> tuple[float, float]:
    """Distances (percent) from the mean down and up to the 95 % CI; zero with one seed."""
    if row.get(f"{key}_std") is None or key not in row:
        return 0.0, 0.0
    return (100 * max(row[key] - row[f"{key}_ci_low"], 0.0),  # a clipped bound never crosses the mean
            100 * max(row[f"{key}_ci_high"] - row[key], 0.0))


def _errors(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([_interval(row, key) for row in rows]).T


def _titles(fig: Any, ax: Any, title: str, caption: str, errors: bool) -> None:
    import textwrap

    text = caption + ("; error bars: 95 % CI over seeds" if errors else "")
    ax.set_title(textwrap.fill(text, 95), fontsize=8)
    fig.suptitle(title, fontsize=11)


def _has_errors(rows: Sequence[dict[str, Any]]) -> bool:
    return any(row.get(f"{MAP_AT_R}_std") is not None for row in rows)


def recall_at_k(rows: Sequence[dict[str, Any]], ks: Sequence[int], caption: str, path: Path) -> list[Path]:
    plt = _pyplot()
    from matplotlib.ticker import NullLocator

    look = styles([row["loss"] for row in rows])
    fig, ax = plt.subplots(layout="constrained", figsize=(6.4, 4.2))
    for row in rows:
        style = look[row["loss"]]
        key = [recall_key(k) for k in ks]
        ax.errorbar(ks, [100 * row[k] for k in key], yerr=np.array([_interval(row, k) for k in key]).T,
                    capsize=3, color=style.color, linestyle=style.linestyle, marker=style.marker,
                    zorder=style.zorder, label=_legend(row))
    ax.set(xscale="log", xticks=list(ks), xticklabels=[str(k) for k in ks], xlabel="K (neighbours retrieved)",
           ylabel="Recall@K (%)")
    ax.xaxis.set_minor_locator(NullLocator())  # no "3 x 10^0" labels on the log axis
    _finish(fig, ax, "Recall@K per loss", caption, _has_errors(rows))
    return _close(plt, fig, path)


def map_at_r(rows: Sequence[dict[str, Any]], caption: str, path: Path) -> list[Path]:
    """MAP@R per loss as horizontal bars (the table's order), the untrained floor as a line."""
    plt = _pyplot()
    look = styles([row["loss"] for row in rows])
    trained = [row for row in rows if row["loss"] != UNTRAINED]
    fig, ax = plt.subplots(layout="constrained", figsize=(6.4, 1.2 + 0.35 * max(len(trained), 2)))
    y = np.arange(len(trained))[::-1]
    ax.barh(y, [100 * row[MAP_AT_R] for row in trained], xerr=_errors(trained, MAP_AT_R), capsize=3,
            color=[look[r["loss"]].color for r in trained], hatch=None, edgecolor="black", linewidth=0.5)
    for bar, row in zip(ax.patches, trained):
        bar.set_hatch(look[row["loss"]].hatch)
    ax.set_yticks(y, [_legend(row) for row in trained])
    for row in rows:
        if row["loss"] == UNTRAINED:
            ax.axvline(100 * row[MAP_AT_R], **_floor_line(), label=f"untrained network ({100 * row[MAP_AT_R]:.1f})")
    ax.set(xlabel="MAP@R (%)")
    ax.set_xlim(left=0)
    if any(row["loss"] == UNTRAINED for row in rows):
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3, axis="x")
    _titles(fig, ax, "MAP@R per loss (the metric the table ranks by)", caption, _has_errors(rows))
    return _close(plt, fig, path)


def float_vs_binary(rows: Sequence[dict[str, Any]], caption: str, path: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(layout="constrained", figsize=(6.4, 4.2))
    x = np.arange(len(rows))
    for offset, key, label, hatch, color in ((-0.2, recall_key(1), "float", "", PALETTE[3]),
                                             (0.2, binary_key(recall_key(1)), "binary (sign)", "//", PALETTE[0])):
        ax.bar(x + offset, [100 * r.get(key, np.nan) for r in rows], 0.4, label=label, hatch=hatch,
               color=color, edgecolor="black", linewidth=0.5, yerr=_errors(rows, key), capsize=3)
    ax.set_xticks(x, [r["loss"] for r in rows], rotation=30, ha="right")
    ax.set(ylabel="Recall@1 (%)", xlabel="loss")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    _titles(fig, ax, "Float vs binary (sign) embeddings: Recall@1", caption, _has_errors(rows))
    return _close(plt, fig, path)


def validation_curves(records: Sequence[RunRecord], curves: Sequence[Sequence[tuple[int, float]]],
                      caption: str, path: Path, metric: str = "MAP@R") -> list[Path]:
    """Each run's validation ``metric`` per epoch: one style per loss, every seed drawn."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    look = styles([record.loss for record in records])
    fig, ax = plt.subplots(layout="constrained", figsize=(6.4, 4.2))
    labelled: set[str] = set()
    for record, curve in zip(records, curves):
        loss, style = record.loss, look[record.loss]
        ax.plot([e for e, _ in curve], [100 * v for _, v in curve], color=style.color,
                linestyle=style.linestyle, marker=style.marker, markersize=4,
                label=None if loss in labelled else loss)
        labelled.add(loss)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=f"validation {metric} (%)")
    ax.set_ylim(bottom=0)
    _finish(fig, ax, f"Validation {metric} per epoch (every seed)", caption, False)
    return _close(plt, fig, path)


def _legend(row: dict[str, Any]) -> str:
    return "untrained network" if row["loss"] == UNTRAINED else row["loss"] + (" *" if row.get("best") is True else "")


def _floor_line() -> dict[str, Any]:
    return {"color": FLOOR["color"], "linestyle": FLOOR["linestyle"], "linewidth": 1.5, "zorder": FLOOR["zorder"]}


def _finish(fig: Any, ax: Any, title: str, caption: str, errors: bool) -> None:
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the curves
    ax.grid(alpha=0.3)
    _titles(fig, ax, title, caption, errors)


def _close(plt: Any, fig: Any, path: Path) -> list[Path]:
    paths = save_figure(fig, path)
    plt.close(fig)
    return paths
