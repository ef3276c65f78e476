"""The loss registry: ``@register_loss``, ``list_losses``, ``get_loss_spec``, ``create_loss``.

A :class:`LossSpec` binds a loss class to the batch sampler its paper assumes and to its
default hyperparameters (the paper's values), so a trainer can build any loss the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from losszoo.registry import Registry

ENTRY_POINT_GROUP = "losszoo.losses"

# Constructor arguments the harness supplies itself; they are not hyperparameters.
_CONTEXT_ARGS = ("embedding_dim", "num_classes")


@dataclass(frozen=True)
class LossSpec:
    """What the harness needs to know about a registered loss.

    Attributes:
        name: canonical registry name.
        cls: the ``nn.Module`` subclass; called as ``cls(**context, **hyperparameters)``.
        sampler: registry name of the batch sampler the loss needs (``losszoo.samplers``).
        defaults: default hyperparameters (read-only); the accepted set of overrides.
        needs_num_classes: whether the constructor takes ``num_classes`` (class weights, proxies).
        needs_embedding_dim: whether the constructor takes ``embedding_dim``.
        lr_multiplier: learning-rate multiplier for the loss's own parameters.
        aliases: other names that resolve to this loss.
        tags: free-form labels (``"classification"``, ``"pair"``, ``"proxy"``...).
    """

    name: str
    cls: type[nn.Module]
    sampler: str
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    needs_num_classes: bool = False
    needs_embedding_dim: bool = False
    lr_multiplier: float = 1.0
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


LOSSES: Registry[LossSpec] = Registry("loss", entry_point_group=ENTRY_POINT_GROUP)


def _constructor_defaults(cls: type) -> tuple[dict[str, Any], set[str]]:
    """Keyword defaults of ``cls.__init__`` and the context arguments it takes."""
    params = inspect.signature(cls.__init__).parameters
    context = {name for name in _CONTEXT_ARGS if name in params}
    defaults = {}
    for name, param in params.items():
        if name == "self" or name in context or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{cls.__name__}.__init__: hyperparameter {name!r} needs a default")
        defaults[name] = param.default
    return defaults, context


def register_loss(
    name: str,
    *,
    sampler: str = "class_balanced",
    defaults: Mapping[str, Any] | None = None,
    lr_multiplier: float = 1.0,
    aliases: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a loss to the zoo.

    ``defaults`` overrides the constructor's own keyword defaults; every key must be a
    constructor argument. The spec's hyperparameters are all the constructor's keyword
    arguments except ``embedding_dim`` and ``num_classes``, which the harness supplies.

    Example::

        @register_loss("myloss", sampler="class_balanced", tags=("pair",))
        class MyLoss(MetricLoss):
            def __init__(self, margin: float = 0.1): ...
    """

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"@register_loss({name!r}) must decorate an nn.Module subclass")
        hyper, context = _constructor_defaults(cls)
        unknown = set(defaults or {}) - set(hyper)
        if unknown:
            raise TypeError(
                f"@register_loss({name!r}): defaults {sorted(unknown)} are not arguments of "
                f"{cls.__name__}.__init__ (accepted: {sorted(hyper)})"
            )
        hyper.update(defaults or {})
        spec = LossSpec(
            name=name,
            cls=cls,
            sampler=sampler,
            defaults=MappingProxyType(hyper),
            needs_num_classes="num_classes" in context,
            needs_embedding_dim="embedding_dim" in context,
            lr_multiplier=float(lr_multiplier),
            aliases=tuple(aliases),
            tags=tuple(tags),
        )
        LOSSES.add(name, spec, aliases=spec.aliases)
        return cls

    return wrap


def list_losses(pattern: str = "*") -> list[str]:
    """Registered loss names matching the fnmatch ``pattern`` (e.g. ``"*softmax*"``), sorted."""
    return LOSSES.names(pattern)


def get_loss_spec(name: str) -> LossSpec:
    """The frozen :class:`LossSpec` for ``name`` (an alias works too)."""
    return LOSSES.get(name)


def create_loss(
    name: str, *, embedding_dim: int, num_classes: int | None = None, **overrides: Any
) -> nn.Module:
    """Build a registered loss with its paper defaults, updated by ``overrides``.

    ``None`` overrides are dropped (so CLI options left unset keep the defaults); unknown
    hyperparameters are rejected by name, listing the accepted ones.
    """
    spec = get_loss_spec(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        accepted = ", ".join(sorted(spec.defaults)) or "none"
        raise TypeError(
            f"loss {spec.name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"accepted: {accepted}"
        )
    kwargs: dict[str, Any] = {**spec.defaults, **overrides}
    if spec.needs_embedding_dim:
        kwargs["embedding_dim"] = embedding_dim
    if spec.needs_num_classes:
        if num_classes is None:
            raise ValueError(f"loss {spec.name!r} owns class weights: pass num_classes")
        kwargs["num_classes"] = num_classes
    return spec.cls(**kwargs)
