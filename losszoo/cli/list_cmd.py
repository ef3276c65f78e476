"""``losszoo list``: the registered losses (with their groups, samplers, defaults, search
spaces and capabilities), miners, samplers, backbones, datasets and shipped presets."""

from __future__ import annotations

import argparse

from typing import Any

from losszoo.cli.options import HelpFormatter, plain
from losszoo.cli.tables import print_table

WHAT = ("losses", "miners", "samplers", "backbones", "datasets", "presets")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list losses, miners, samplers, backbones, datasets, presets",
                                   description=plain(__doc__), formatter_class=HelpFormatter)
    parser.add_argument("what", nargs="?", choices=WHAT, help="one kind only (default: all)")
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*softmax*'")
    parser.set_defaults(run=run)


def loss_rows(names: list[str]) -> list[list[str]]:
    from losszoo.losses import LOSSES, get_loss_spec

    aliases = LOSSES.aliases()
    rows = []
    for name in names:
        spec = get_loss_spec(name)
        rows.append([
            name,
            ", ".join(a for a, target in aliases.items() if target == name),
            spec.group or "",
            spec.sampler,
            ", ".join(f"{k}={v}" for k, v in spec.defaults.items() if v is not None),
            ", ".join(f"{k} {v}" for k, v in spec.search_space.items()),
            ", ".join(spec.tags),
            ", ".join(spec.capabilities),
        ])
    return rows


def print_losses_table(console: Any, names: list[str]) -> None:
    columns = ("name", "aliases", "group", "sampler", "defaults", "search space", "tags", "capabilities")
    print_table(console, "losses", columns, loss_rows(names))


def print_losses(console: Any, pattern: str) -> None:
    """The losses matching ``pattern`` in a table. The plain listing leaves out the names of
    namespace plugins (``pml:*``: importing PML alone takes longer than the rest) and says how
    to list them."""
    from losszoo.losses import LOSSES, list_losses

    if pattern != "*":
        print_losses_table(console, list_losses(pattern))
        return
    print_losses_table(console, list_losses(namespaced=False))
    for prefix in LOSSES.namespaces():
        console.print(f"[bold]{prefix}:<name>[/bold] losses of a plugin: "
                      f"`losszoo list losses '{prefix}:*'` lists them with their defaults")


def print_miners(console: Any, pattern: str) -> None:
    """The miners matching ``pattern``; the plain listing, like the losses', names the plugin
    namespaces instead of importing them."""
    from losszoo.miners import MINERS, list_miners

    names = list_miners(pattern) if pattern != "*" else list_miners(namespaced=False)
    console.print("[bold]miners[/bold]: " + (", ".join(names) or "none of its own"))
    if pattern == "*":
        for prefix in MINERS.namespaces():
            console.print(f"[bold]{prefix}:<name>[/bold] miners of a plugin: "
                          f"`losszoo list miners '{prefix}:*'` lists them")


def list_presets(pattern: str = "*") -> list[str]:
    """The shipped presets matching ``pattern`` (``losszoo compare --preset NAME``)."""
    import fnmatch

    from losszoo.training.config import preset_names

    return [name for name in preset_names() if fnmatch.fnmatchcase(name, pattern)]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.data import list_datasets
    from losszoo.models import list_backbones
    from losszoo.samplers import list_samplers

    console = Console()
    kinds = [args.what] if args.what else list(WHAT)
    listers = {"samplers": list_samplers, "backbones": list_backbones, "datasets": list_datasets,
               "presets": list_presets}
    for kind in kinds:
        if kind == "losses":
            print_losses(console, args.pattern)
        elif kind == "miners":
            print_miners(console, args.pattern)
        else:
            console.print(f"[bold]{kind}[/bold]: " + ", ".join(listers[kind](args.pattern)))
    return 0
