"""What a comparison trains, and how each loss's settings were obtained.

One loader, :func:`load_comparison`, builds a :class:`ComparisonSpec` from the layers a user
can give, in one documented precedence (highest first)::

    command line > config file > tuned preset > dataset preset > paper defaults

The tuned source is a named shipped preset (``preset``, e.g. ``cub100-cpu``), or a config file
with a ``[tuning]`` table (a ``best.toml``), else the dataset's shipped preset
(``presets/<dataset>.toml``); with ``untuned``, a named preset gives only its shared settings.
Its per-loss tables (``[loss_options.<loss>]``, ``[loss_settings.<loss>]``) hold for its own
top-level settings; a setting given above it (a flag, a key of a plain config file) wins over a
loss's tuned value, and the row says so. A comparison with a tuned source is tuned: a loss the source
did not tune is refused unless named in ``allow_untuned``, and then its row is marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losszoo.errors import ConfigError
from losszoo.training.config import (TrainConfig, build_config, named_preset, preset_settings, read_toml, toml_string,
                                     toml_value, tuned_preset)

if TYPE_CHECKING:  # importing the records would import torch
    from losszoo.training.records import RunRecord

TUNED, UNTUNED, BY_HAND = "tuned", "untuned", "by hand"


@dataclass(frozen=True)
class LossEntry:
    """One compared loss: its hyperparameters, the shared settings set for it alone, and how
    they were obtained (``provenance``; ``by_hand``: settings given over its tuned values)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: str = UNTUNED
    by_hand: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComparisonSpec:
    """The losses compared under one shared ``base`` config, for ``seeds`` seeds each;
    ``tuning`` (trials, metric, curves) describes the tuned source, None when untuned."""

    base: TrainConfig
    losses: tuple[LossEntry, ...]
    seeds: int = 1
    tuning: dict[str, Any] | None = None
    source: str | None = field(default=None, compare=False)  # the tuned source's path, for messages

    def tuned_by(self, results: Sequence[Any], tuning: dict[str, Any]) -> ComparisonSpec:
        """This comparison with every loss's settings from ``results`` (``TuneResult``s of
        ``losszoo tune``, one per loss), values given by hand kept over them."""
        best = {result.loss: result for result in results}
        entries = []
        for entry in self.losses:
            result = best[entry.name]
            entries.append(LossEntry(entry.name, {**result.loss_options, **entry.options},
                                     {**result.loss_settings, **entry.settings}, TUNED,
                                     tuple(sorted({*entry.options, *entry.settings}))))
        return replace(self, losses=tuple(entries), tuning=tuning)

    def to_toml(self) -> str:
        """This spec as a config file that :func:`load_comparison` reads back into it (``losszoo
        compare --config`` runs it): every shared setting, the losses and seeds, each loss's
        tables, and under ``[tuning]`` how the values were obtained."""
        lines = ["# A losszoo comparison spec (losszoo.training.spec): losszoo compare --config FILE", "",
                 f"losses = {toml_value(self.names)}", f"seeds = {self.seeds}"]
        if self.tuning is None:
            lines.append("untuned = true")
        lines += [f"{key} = {toml_value(value)}" for key, value in self.base.to_dict().items()
                  if key not in ("loss", "loss_options") and value is not None and not isinstance(value, dict)]
        lines += _table("miner_options", self.base.miner_options)
        tuning = self.caption_tuning()
        if tuning is not None:
            scalars = {k: v for k, v in tuning.items() if not isinstance(v, dict)}
            lines += _table("tuning", scalars)
            for key in ("curves", "by_hand"):
                if tuning.get(key):
                    lines += _table(f"tuning.{key}", tuning[key])
        for entry in self.losses:
            lines += _table(f"loss_options.{toml_string(entry.name)}", entry.options, keep_empty=False)
            lines += _table(f"loss_settings.{toml_string(entry.name)}", entry.settings, keep_empty=False)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, path: str | Path) -> ComparisonSpec:
        """The spec a file written by :meth:`to_toml` (or any config file) describes."""
        return load_comparison(command_line={}, config_file=path)

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.losses]

    def loss_options(self) -> dict[str, dict[str, Any]]:
        return {entry.name: dict(entry.options) for entry in self.losses if entry.options}

    def loss_settings(self) -> dict[str, dict[str, Any]]:
        return {entry.name: dict(entry.settings) for entry in self.losses if entry.settings}

    def caption_tuning(self) -> dict[str, Any] | None:
        """``tuning`` plus the rows that are not (wholly) tuned, for the report's caption."""
        if self.tuning is None:
            return None
        untuned = [entry.name for entry in self.losses if entry.provenance != TUNED]
        by_hand = {entry.name: list(entry.by_hand) for entry in self.losses if entry.by_hand}
        return {**self.tuning, **({"untuned": untuned} if untuned else {}),
                **({"by_hand": by_hand} if by_hand else {})}


def load_comparison(
    *, command_line: Mapping[str, Any], config_file: str | Path | None = None, untuned: bool = False,
    losses: Sequence[str] | None = None, seeds: int | None = None,
    loss_options: Mapping[str, Mapping[str, Any]] | None = None,
    allow_untuned: Sequence[str] = (), preset: str | None = None,
) -> ComparisonSpec:
    """The comparison that these layers describe (see the module docstring).

    ``command_line``: TrainConfig settings given as flags (None values are not given);
    ``loss_options``: per-loss hyperparameters given as flags (``--loss-option LOSS.NAME=V``);
    ``preset``: a shipped preset's name (:func:`losszoo.training.config.preset_names`).
    """
    from losszoo.losses import select_losses
    from losszoo.training.plan import loss_name

    given = {key: value for key, value in command_line.items() if value is not None}
    file_table = read_toml(config_file) if config_file else {}
    untuned = untuned or bool(file_table.get("untuned"))
    source_path: Path | str | None = None
    shared: dict[str, Any] = {}  # an untuned named preset: its settings, below the config file
    if preset is not None:
        if "tuning" in file_table:
            raise ConfigError(f"--preset {preset} and {config_file} both hold tuned settings "
                              "(its [tuning] table): give one of them")
        path, plain = named_preset(preset), file_table
        if untuned:  # its shared settings, none of its per-loss tables
            source, shared = {}, preset_settings(preset)
        else:
            source, source_path = read_toml(path), path
    elif "tuning" in file_table:
        source, plain, source_path = file_table, {}, config_file
    else:
        dataset = given.get("dataset") or file_table.get("dataset") or TrainConfig.dataset
        source_path = None if untuned else tuned_preset(dataset)
        source, plain = (read_toml(source_path) if source_path else {}), file_table
    base = build_config(_top_level(shared), _top_level(source), _top_level(plain), given)

    chosen = losses if losses is not None else plain.get("losses", source.get("losses", shared.get("losses")))
    if chosen is not None and not chosen:
        raise ConfigError("no loss to compare: --losses is empty")
    names = list(dict.fromkeys(loss_name(name) for name in select_losses(chosen)))
    tuned = _per_loss(source, loss_name)
    hand = _merge(_per_loss(plain, loss_name), {loss_name(k): (dict(v), {}) for k, v in (loss_options or {}).items()})
    stray = sorted(set(hand) - set(names))
    if stray:
        raise ConfigError(f"loss options given for losses not compared: {', '.join(stray)}")
    overriding = set(_top_level(plain)) | set(given)  # settings given above the tuned source

    entries = []
    for name in names:
        options, settings = (dict(part) for part in tuned.get(name, ({}, {})))
        hand_options, hand_settings = hand.get(name, ({}, {}))
        by_hand = sorted({k for k in settings if k in overriding} | set(hand_settings) | set(hand_options))
        settings = {k: v for k, v in settings.items() if k not in overriding}
        options.update(hand_options)
        settings.update(hand_settings)
        provenance = TUNED if name in tuned else (BY_HAND if name in hand else UNTUNED)
        entries.append(LossEntry(name, options, settings, provenance,
                                 tuple(by_hand) if provenance == TUNED else ()))
    tuning = _tuning(source, base) if "tuning" in source else None
    if tuning is not None:  # a written spec says which of its rows were allowed untuned or set by hand
        allow_untuned = [*allow_untuned, *tuning.pop("untuned", ())]
        recorded = {loss_name(k): tuple(v) for k, v in tuning.pop("by_hand", {}).items()}
        entries = [replace(e, by_hand=tuple(sorted({*e.by_hand, *recorded.get(e.name, ())})))
                   if e.provenance == TUNED else e for e in entries]
    allowed = [loss_name(name) for name in select_losses(list(allow_untuned))] if allow_untuned else []
    _check_untuned(entries, tuning is not None, allowed, source_path)
    seeds = seeds if seeds is not None else plain.get("seeds", source.get("seeds", shared.get("seeds", 1)))
    return ComparisonSpec(base, tuple(entries), seeds, tuning, None if source_path is None else str(source_path))


def _table(name: str, values: Mapping[str, Any], *, keep_empty: bool = False) -> list[str]:
    if not values and not keep_empty:
        return []
    return ["", f"[{name}]", *(f"{toml_string(key)} = {toml_value(value)}" for key, value in values.items())]


def _top_level(table: Mapping[str, Any]) -> dict[str, Any]:
    """A config file's TrainConfig settings (its top-level keys less the comparison's own)."""
    from losszoo.training.config import FILE_KEYS

    return {k: v for k, v in table.items() if k not in FILE_KEYS and not isinstance(v, dict)}


def _per_loss(table: Mapping[str, Any], canonical: Any) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``{loss: (options, settings)}`` from ``[loss_options.<loss>]`` and ``[loss_settings.<loss>]``,
    by canonical name (an alias's values merge into its loss's)."""
    tables: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for index, key in enumerate(("loss_options", "loss_settings")):
        for name, values in table.get(key, {}).items():
            if not isinstance(values, dict):
                raise ConfigError(f"{key} must hold one {key}.<loss> table per loss (compare), "
                                  f"got {key}.{name} = {values!r}")
            tables.setdefault(canonical(name), ({}, {}))[index].update(values)
    return tables


def _merge(low: dict[str, tuple[dict, dict]], high: dict[str, tuple[dict, dict]]) -> dict[str, tuple[dict, dict]]:
    merged = {name: (dict(o), dict(s)) for name, (o, s) in low.items()}
    for name, (options, settings) in high.items():
        mine = merged.setdefault(name, ({}, {}))
        mine[0].update(options)
        mine[1].update(settings)
    return merged


def _tuning(source: Mapping[str, Any], base: TrainConfig) -> dict[str, Any]:
    """The source's [tuning] table, and the schedule settings the comparison runs with other
    values than tuned for (``changed``: the caption says so)."""
    from losszoo.training.config import SCHEDULE

    tuning = dict(source["tuning"])
    changed = [key for key in SCHEDULE if key in tuning.get("changed", ())
               or (key in source and _differs(source[key], getattr(base, key)))]
    tuning.pop("changed", None)
    return {**tuning, "changed": changed} if changed else tuning


def _differs(tuned: Any, used: Any) -> bool:
    return (list(tuned) != list(used)) if isinstance(tuned, list) else tuned != used


def _check_untuned(entries: Sequence[LossEntry], tuned: bool, allowed: Sequence[str],
                   source: str | Path | None) -> None:
    names = {entry.name for entry in entries}
    stray = sorted(set(allowed) - names)
    if stray:
        raise ConfigError(f"--allow-untuned names losses not compared: {', '.join(stray)}")
    if not tuned:
        return
    refused = [entry.name for entry in entries if entry.provenance != TUNED and entry.name not in allowed]
    if refused:
        listed = ",".join(refused)
        raise ConfigError(
            f"{listed}: not tuned in {source}, while the other losses are: a table mixing tuned and "
            f"untuned losses is unfair; tune them (losszoo tune --losses {listed}), or pass "
            f"--allow-untuned {listed} (their rows are marked), or --untuned for every loss")


def run_comparison(
    spec: ComparisonSpec, output_dir: str | Path, *, tune: int = 0, metric: str | None = None,
    storage: str | None = None, warm_start: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = None,
    command: str | None = None, progress: bool = True, console: Any = None, tensorboard: bool = False,
    save_embeddings: bool = False, callbacks: Sequence[Any] = (),
) -> list[RunRecord]:
    """What ``losszoo compare`` does: with ``tune`` N, first tune N trials per loss on
    validation classes (``<output_dir>/tune``, :func:`losszoo.tuning.tune`; ``warm_start``,
    ``storage``, ``metric`` (default MAP@R) as there), then compare every loss of ``spec`` over its seeds under
    protocol final (:func:`losszoo.training.compare.compare`). Returns the run records."""
    from rich.console import Console

    from losszoo.training.compare import compare

    output_dir = Path(output_dir)
    console = console or Console(stderr=True)
    if spec.tuning and spec.tuning.get("changed"):  # tuned values hold for the schedule they were tuned under
        console.print(f"warning: {spec.source} was tuned for other {', '.join(spec.tuning['changed'])}; "
                      "the table says so")
    if tune:
        from losszoo.tuning import tune as tune_losses
        from losszoo.tuning.study import DEFAULT_METRIC

        metric = metric or DEFAULT_METRIC

        results = tune_losses(spec.base.replace(protocol="tune", eval_every=0), output_dir / "tune",
                              losses=spec.names, trials=tune, metric=metric, storage=storage, command=command,
                              console=console, warm_start=warm_start)
        spec = replace(spec.tuned_by(results, {"trials": tune, "metric": metric,
                                               "curves": {result.loss: result.curve for result in results}}),
                       base=spec.base.replace(protocol="final", eval_every=0))
    return compare(spec.base, output_dir, losses=spec.names, seeds=spec.seeds, loss_options=spec.loss_options(),
                   loss_settings=spec.loss_settings(), progress=progress, console=console,
                   tuning=spec.caption_tuning(), tensorboard=tensorboard, save_embeddings=save_embeddings,
                   callbacks=callbacks)
