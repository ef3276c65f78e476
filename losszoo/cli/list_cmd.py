"""``losszoo list``: the registered losses (with their samplers and defaults), samplers,
backbones and datasets."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from losszoo.data import list_datasets
from losszoo.losses import LOSSES, get_loss_spec, list_losses
from losszoo.models import list_backbones
from losszoo.samplers import list_samplers

WHAT = ("losses", "samplers", "backbones", "datasets")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list losses, samplers, backbones, datasets",
                                   description=__doc__)
    parser.add_argument("what", nargs="?", choices=WHAT, help="one kind only (default: all)")
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*softmax*'")
    parser.set_defaults(run=run)


def losses_table(names: list[str]) -> Table:
    aliases = LOSSES.aliases()
    table = Table(title="losses")
    table.add_column("name", no_wrap=True)
    for column in ("aliases", "sampler", "defaults", "tags"):
        table.add_column(column)
    for name in names:
        spec = get_loss_spec(name)
        table.add_row(
            name,
            ", ".join(a for a, target in aliases.items() if target == name),
            spec.sampler,
            ", ".join(f"{k}={v}" for k, v in spec.defaults.items() if v is not None),
            ", ".join(spec.tags),
        )
    return table


def print_losses(console: Console, pattern: str) -> None:
    """The zoo's own losses in a table; adapter-namespaced ones (``pml:*``) by name only,
    unless the pattern asks for them."""
    names = list_losses(pattern)
    namespaced = [n for n in names if ":" in n]
    if pattern != "*" or not namespaced:
        console.print(losses_table(names))
        return
    console.print(losses_table([n for n in names if ":" not in n]))
    console.print(f"[bold]adapted losses[/bold] ({len(namespaced)}; `losszoo list losses 'pml:*'` "
                  "shows their defaults): " + ", ".join(namespaced))


def run(args: argparse.Namespace) -> int:
    console = Console()
    kinds = [args.what] if args.what else list(WHAT)
    listers = {"samplers": list_samplers, "backbones": list_backbones, "datasets": list_datasets}
    for kind in kinds:
        if kind == "losses":
            print_losses(console, args.pattern)
        else:
            console.print(f"[bold]{kind}[/bold]: " + ", ".join(listers[kind](args.pattern)))
    return 0
