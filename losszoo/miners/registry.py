"""The miner registry: ``@register_miner``, ``list_miners``, ``create_miner``.

A miner picks the pairs or triplets a loss is computed over: called as ``miner(embeddings,
labels)``, it returns pytorch-metric-learning's ``indices_tuple`` (triplets ``(anchors,
positives, negatives)`` or pairs ``(a1, p, a2, n)``), which a loss that takes a miner
(``LossSpec.takes_miner``) uses instead of choosing its own.

Miners come from plugins through the registry's namespace mechanism, as ``pml:`` losses do:
the PML adapter's hook (the ``pml`` entry point of ``losszoo.losses.namespaces``) registers
PML's miners as ``pml:<class name, lowercased>`` beside its losses, and is imported only when a
``pml:`` name is first asked for.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from losszoo.errors import ConfigError
from losszoo.hyperparams import Hyper, complete
from losszoo.registry import Registry

ENTRY_POINT_GROUP = "losszoo.miners"
# One declaration per plugin prefix: a namespace plugin registers its losses and its miners.
NAMESPACE_GROUP = "losszoo.losses.namespaces"


@dataclass(frozen=True)
class MinerSpec:
    """A registered miner: its name and the ``nn.Module`` class built as ``cls(**options)``."""

    name: str
    cls: type[nn.Module]


MINERS: Registry[MinerSpec] = Registry("miner", entry_point_group=ENTRY_POINT_GROUP,
                                       namespace_group=NAMESPACE_GROUP)


def register_miner(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator adding a miner (an ``nn.Module`` returning an ``indices_tuple``)."""

    def wrap(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"@register_miner({name!r}) must decorate an nn.Module subclass")
        MINERS.add(name, MinerSpec(name, cls), aliases=tuple(aliases))
        return cls

    return wrap


def list_miners(pattern: str = "*", *, namespaced: bool = True) -> list[str]:
    """Registered miner names matching the fnmatch ``pattern``, sorted; only names without a
    namespace (no ``pml:*``, so PML is not imported) if ``namespaced`` is false."""
    return MINERS.names(pattern, namespaced=namespaced)


def get_miner_spec(name: str) -> MinerSpec:
    """The :class:`MinerSpec` of ``name`` (case-insensitive); ``KeyError`` with suggestions."""
    return MINERS.get(name)


def create_miner(name: str, **options: Any) -> nn.Module:
    """The miner ``name`` (``pml:MultiSimilarityMiner``, case-insensitive) built with
    ``options``, each checked like a loss's hyperparameter (:func:`miner_arguments`);
    ``ConfigError`` for an unknown name or a bad option."""
    try:
        spec = get_miner_spec(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    checked = miner_arguments(spec.cls, options)
    try:
        return spec.cls(**checked)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"miner {spec.cls.__name__}: {exc or 'invalid arguments'}") from None


def miner_arguments(cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked like a loss's hyperparameters: each value coerced to the type of
    the miner's default (or hint), NaN and infinity refused (a NaN margin mines nothing and
    trains with loss 0); ``ConfigError`` names the miner and the option."""
    params = inspect.signature(cls.__init__).parameters
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable hints: the defaults give the types
        hints = {}
    owner = f"miner {cls.__name__}"
    checked = {}
    for name, value in options.items():
        param = params.get(name)
        default = None if param is None or param.default is inspect.Parameter.empty else param.default
        hyper = complete(None, hints.get(name), default) if param is not None else Hyper()
        if hyper.kind is None and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{owner}: {name} must be a finite number, got {value}")
        checked[name] = hyper.coerce(value, name, owner)
    return checked
