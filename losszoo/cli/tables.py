"""Tables the commands print: a rich table on a terminal, plain Markdown when the output is piped
or redirected (so no cell is ever cut to the terminal's width)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def print_table(console: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                *, right: Sequence[str] = ()) -> None:
    """Print ``rows`` under ``columns`` on ``console`` (a rich Console); ``right``: right-aligned columns."""
    if console.is_terminal:
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left",
                             no_wrap=column == columns[0])
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(markdown_table(title, columns, rows), markup=False, highlight=False, soft_wrap=True)


def markdown_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, cells' '|' escaped, preceded by its title."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([f"**{title}**", "", line(columns), "|" + "---|" * len(columns),
                      *(line(row) for row in rows)]) + "\n"
