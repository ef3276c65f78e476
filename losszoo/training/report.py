"""The comparison report: mean +/- std over seeds per loss, as a rich table, results.json,
results.csv, results.md, and two plots (Recall@K curves; float vs binary R@1)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from losszoo.training.checkpoint import atomic_write, write_json, write_text


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per loss (in first-seen order): mean and std of every metric over its seeds."""
    by_loss: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_loss[record["loss"]].append(record)
    rows = []
    for loss, runs in by_loss.items():
        row: dict[str, Any] = {"loss": loss, "seeds": len(runs)}
        numeric = [k for k, v in runs[0]["metrics"].items() if isinstance(v, (int, float))]
        for key in numeric:
            _mean_std(row, key, [run["metrics"][key] for run in runs])
        _mean_std(row, "train_seconds", [run["train_seconds"] for run in runs])
        rows.append(row)
    return rows


def _mean_std(row: dict[str, Any], key: str, values: Sequence[float]) -> None:
    row[key] = float(np.mean(values))
    row[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _columns(ks: Sequence[int]) -> list[tuple[str, str]]:
    return (
        [(f"recall@{k}", f"R@{k}") for k in ks]
        + [("nmi", "NMI"), ("map_at_r", "MAP@R")]
        + [("binary/recall@1", "bin R@1"), ("binary/map_at_r", "bin MAP@R")]
    )


def _cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "-"
    mean, std = 100 * row[key], 100 * row[f"{key}_std"]
    return f"{mean:.1f} ± {std:.1f}" if row["seeds"] > 1 else f"{mean:.1f}"


def render_table(rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> Table:
    table = Table(title="losszoo compare (%, mean ± std over seeds)")
    table.add_column("loss", style="bold", no_wrap=True,
                     min_width=max((len(row["loss"]) for row in rows), default=4))
    for _, title in _columns(ks):
        table.add_column(title, justify="right")
    table.add_column("train s", justify="right")
    for row in rows:
        table.add_row(row["loss"], *(_cell(row, key) for key, _ in _columns(ks)),
                      f"{row['train_seconds']:.0f}")
    return table


def to_markdown(rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> str:
    header = ["loss", *(title for _, title in _columns(ks)), "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["loss"], *(_cell(row, key) for key, _ in _columns(ks)), f"{row['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(rows: Sequence[dict[str, Any]], ks: Sequence[int], output_dir: Path) -> list[Path]:
    """Recall@K curves per loss, and float vs binary R@1 bars, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.errorbar(ks, [100 * row[f"recall@{k}"] for k in ks],
                    yerr=[100 * row[f"recall@{k}_std"] for k in ks], marker="o", capsize=3,
                    label=row["loss"], linestyle="--" if row["loss"] == "untrained" else "-")
    ax.set(xscale="log", xticks=list(ks), xticklabels=[str(k) for k in ks], xlabel="K",
           ylabel="Recall@K (%)", title="Recall@K per loss")
    ax.xaxis.set_minor_locator(NullLocator())  # no "3 x 10^0" labels on the log axis
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the curves
    ax.grid(alpha=0.3)
    paths.append(_save(fig, output_dir / "recall_at_k.png"))
    plt.close(fig)

    if any("binary/recall@1" in row for row in rows):
        fig, ax = plt.subplots(figsize=(6, 4))
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [100 * r["recall@1"] for r in rows], 0.4, label="float")
        ax.bar(x + 0.2, [100 * r.get("binary/recall@1", np.nan) for r in rows], 0.4, label="binary")
        ax.set_xticks(x, [r["loss"] for r in rows], rotation=30, ha="right")
        ax.set(ylabel="Recall@1 (%)", title="Float vs binary (sign) embeddings")
        ax.legend()
        fig.tight_layout()
        paths.append(_save(fig, output_dir / "float_vs_binary_r1.png"))
        plt.close(fig)
    return paths


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))


def write_report(records: Sequence[dict[str, Any]], output_dir: str | Path, *, ks: Sequence[int],
                 console: Console | None = None) -> list[dict[str, Any]]:
    output_dir = Path(output_dir)
    rows = summarize(records)
    write_json(output_dir / "results.json", {"summary": rows, "runs": list(records)})
    write_text(output_dir / "results.csv", to_csv(rows))
    write_text(output_dir / "results.md", to_markdown(rows, ks))
    plot(rows, ks, output_dir)
    if console is not None:
        console.print(render_table(rows, ks))
    return rows
