"""The loss registry: ``@register_loss``, ``list_losses``, ``get_loss_spec``, ``create_loss``.

A :class:`LossSpec` binds a loss class to the batch sampler its paper assumes and to its
default hyperparameters (the paper's values), so a trainer can build any loss the same way.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from torch import nn

from losszoo.hyperparams import Hyper, SearchRange, complete, resolve
from losszoo.errors import ConfigError
from losszoo.losses.base import supports_memory, takes_miner
from losszoo.registry import Registry

ENTRY_POINT_GROUP = "losszoo.losses"

# Constructor arguments the harness supplies itself; they are not hyperparameters.
_CONTEXT_ARGS = ("embedding_dim", "num_classes")
_CONTEXT_HYPER = Hyper(kind=int, ge=1)


@dataclass(frozen=True)
class LossSpec:
    """What the harness needs to know about a registered loss.

    Attributes:
        name: canonical registry name.
        cls: the ``nn.Module`` subclass; called as ``cls(**context, **hyperparameters)``.
        sampler: registry name of the batch sampler the loss needs (``losszoo.samplers``).
        defaults: default hyperparameters (read-only); the accepted set of overrides.
        hyperparameters: each hyperparameter's type, constraint and search range
            (:class:`~losszoo.hyperparams.Hyper`), in the constructor's order.
        needs_num_classes: whether the constructor takes ``num_classes`` (class weights, proxies).
        needs_embedding_dim: whether the constructor takes ``embedding_dim``.
        lr_multiplier: learning-rate multiplier for the loss's own parameters.
        aliases: other names that resolve to this loss.
        tags: free-form labels (``"classification"``, ``"pair"``, ``"proxy"``...).
        global_batch: under torchrun, whether the loss must see the global batch (the harness
            gathers every rank's embeddings and labels for it, with gradients); False for a
            loss that is a mean over samples of per-sample terms, computed per rank.
        group: the comparison group the loss belongs to (``"paper"``: the eight losses Zhai &
            Wu compare, the default of ``losszoo compare``; ``"modern"``: the later ones), or
            None; ``--losses GROUP`` names a group's losses (:func:`select_losses`).
        needs_positive_pairs: whether the loss's terms need two samples of one class in a batch
            (pair and triplet losses): with ``samples_per_class`` 1 it would be 0 at every step,
            so the harness refuses such a run before any work.
        takes_miner: whether a miner's tuples can replace the loss's own pairs or triplets
            (its class defines ``compute_mined``; ``miner_refusal`` says why not).
        shards_class_weights: whether ``shard_class_weights`` can split the loss's class
            weights across ranks (:class:`~losszoo.distributed.sharded.ShardedClassLoss`).
        supports_memory: whether the loss can run against a cross-batch memory (its class
            defines ``compute_against``: :mod:`losszoo.losses.xbm`).

    Every capability is read here, at registration; the harness (planner, trainer, tuner,
    help and error texts) asks the spec, never the class.
    """

    name: str
    cls: type[nn.Module]
    sampler: str
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    hyperparameters: Mapping[str, Hyper] = field(default_factory=lambda: MappingProxyType({}))
    needs_num_classes: bool = False
    needs_embedding_dim: bool = False
    lr_multiplier: float = 1.0
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    global_batch: bool = True
    group: str | None = None
    needs_positive_pairs: bool = False
    takes_miner: bool = False
    shards_class_weights: bool = False
    supports_memory: bool = False

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The names of the capabilities the loss has (for listings)."""
        return tuple(name for name in CAPABILITIES if getattr(self, name))

    @property
    def search_space(self) -> dict[str, SearchRange]:
        """The hyperparameters a tuner searches, with their ranges (declared at registration)."""
        return {name: h.search for name, h in self.hyperparameters.items() if h.search is not None}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every hyperparameter's value (defaults updated by ``overrides``), coerced and checked;
        ``ConfigError`` names the loss and the parameter. ``None`` overrides keep the default."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        return resolve(self.hyperparameters, self.defaults, given, f"loss {self.name!r}")


# The spec's yes/no capabilities, as ``losszoo list`` shows them.
CAPABILITIES = ("takes_miner", "shards_class_weights", "supports_memory", "global_batch",
                "needs_positive_pairs")

LOSSES: Registry[LossSpec] = Registry("loss", entry_point_group=ENTRY_POINT_GROUP)

DEFAULT_GROUP = "paper"  # what ``losszoo compare`` and ``losszoo tune`` run without --losses
ALL_GROUP = "all"  # every loss without a namespace


def _constructor_defaults(cls: type) -> tuple[dict[str, Any], set[str]]:
    """Keyword defaults of ``cls.__init__`` and the context arguments it takes."""
    params = _signature(cls).parameters
    context = {name for name in _CONTEXT_ARGS if name in params}
    defaults = {}
    for name, param in params.items():
        if name == "self" or name in context or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{cls.__name__}.__init__: hyperparameter {name!r} needs a default")
        defaults[name] = param.default
    return defaults, context


def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls.__init__)


def _declarations(
    cls: type, defaults: Mapping[str, Any], declared: Mapping[str, Hyper]
) -> dict[str, Hyper]:
    """Each hyperparameter's :class:`Hyper`, its type read from the constructor's hints."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable hints (a plugin's forward references): fall back to defaults
        hints = {}
    return {name: complete(declared.get(name), hints.get(name), default)
            for name, default in defaults.items()}


def _validating_init(cls: type, owner: str) -> None:
    """Make ``cls(...)`` coerce and check its hyperparameters, so direct construction
    (``NormSoftmax(64, 10, temperature=float("inf"))``) is refused like ``create_loss``."""
    original = cls.__dict__["__init__"] if "__init__" in cls.__dict__ else cls.__init__
    signature = _signature(cls)

    @functools.wraps(original)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        spec = getattr(type(self), "_losszoo_spec", None)
        if spec is None or type(self) is not cls:  # a subclass validates its own arguments
            original(self, *args, **kwargs)
            return
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{owner}: {exc}") from None
        for name in _CONTEXT_ARGS:
            if name in bound.arguments:
                bound.arguments[name] = _CONTEXT_HYPER.coerce(bound.arguments[name], name, owner)
        for name, hyper in spec.hyperparameters.items():
            if name in bound.arguments:
                bound.arguments[name] = hyper.coerce(bound.arguments[name], name, owner)
        original(*bound.args, **bound.kwargs)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def register_loss(
    name: str,
    *,
    sampler: str = "class_balanced",
    defaults: Mapping[str, Any] | None = None,
    lr_multiplier: float = 1.0,
    aliases: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
    hyperparameters: Mapping[str, Hyper] | None = None,
    search_space: Mapping[str, SearchRange] | None = None,
    global_batch: bool = True,
    group: str | None = None,
    needs_positive_pairs: bool = False,
    shards_class_weights: bool = False,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a loss to the zoo.

    ``defaults`` overrides the constructor's own keyword defaults; every key must be a
    constructor argument. The spec's hyperparameters are all the constructor's keyword
    arguments except ``embedding_dim`` and ``num_classes``, which the harness supplies.
    ``hyperparameters`` declares constraints (and search ranges) per argument
    (:class:`~losszoo.hyperparams.Hyper`); their types come from the constructor's hints.
    ``search_space`` is a shorthand that only adds search ranges. The class is made to check
    its hyperparameters on construction, whoever builds it. ``global_batch`` (default True,
    always exact): under torchrun the harness gathers the global batch for the loss; declare
    False only for a per-sample mean without batch-dependent choices (no mining, no sampling).
    ``group`` puts the loss in a named comparison group (:func:`select_losses`).
    ``needs_positive_pairs``: declare True for a pair or triplet loss (see :class:`LossSpec`).
    ``shards_class_weights``: declare True for a loss whose class weights ``ShardedClassLoss``
    can split (a cosine softmax, Proxy-NCA, Proxy-Anchor). Whether it takes a miner or a
    cross-batch memory is read from the methods its class defines.

    Example::

        @register_loss("myloss", hyperparameters={"margin": Hyper(ge=0, search=Uniform(0, 1))})
        class MyLoss(MetricLoss):
            def __init__(self, margin: float = 0.1): ...
    """

    if group is not None and (group == ALL_GROUP or ":" in group):
        raise ValueError(f"@register_loss({name!r}): group {group!r} is reserved or namespaced")

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"@register_loss({name!r}) must decorate an nn.Module subclass")
        hyper, context = _constructor_defaults(cls)
        if shards_class_weights and "num_classes" not in context:
            raise TypeError(f"@register_loss({name!r}): shards_class_weights needs class weights "
                            f"({cls.__name__}.__init__ takes no num_classes)")
        unknown = set(defaults or {}) - set(hyper)
        if unknown:
            raise TypeError(
                f"@register_loss({name!r}): defaults {sorted(unknown)} are not arguments of "
                f"{cls.__name__}.__init__ (accepted: {sorted(hyper)})"
            )
        hyper.update(defaults or {})
        declared = dict(hyperparameters or {})
        for key, search in (search_space or {}).items():
            declared[key] = replace(declared.get(key, Hyper()), search=search)
        unknown = set(declared) - set(hyper)
        if unknown:
            raise TypeError(
                f"@register_loss({name!r}): hyperparameters {sorted(unknown)} are not arguments of "
                f"{cls.__name__}.__init__ (accepted: {sorted(hyper)})"
            )
        declarations = _declarations(cls, hyper, declared)
        owner = f"loss {name!r}"
        for key, value in hyper.items():  # a default that breaks its own constraint is a bug
            declarations[key].coerce(value, key, owner)
        spec = LossSpec(
            name=name,
            cls=cls,
            sampler=sampler,
            defaults=MappingProxyType(hyper),
            hyperparameters=MappingProxyType(declarations),
            needs_num_classes="num_classes" in context,
            needs_embedding_dim="embedding_dim" in context,
            lr_multiplier=float(lr_multiplier),
            aliases=tuple(aliases),
            tags=tuple(tags),
            global_batch=bool(global_batch),
            group=group,
            needs_positive_pairs=bool(needs_positive_pairs),
            takes_miner=takes_miner(cls),
            shards_class_weights=bool(shards_class_weights),
            supports_memory=supports_memory(cls),
        )
        LOSSES.add(name, spec, aliases=spec.aliases)
        if "_losszoo_spec" not in cls.__dict__:  # one class registered twice keeps its first spec
            _validating_init(cls, owner)
            cls._losszoo_spec = spec  # type: ignore[attr-defined]
        return cls

    return wrap


def list_losses(
    pattern: str = "*", *, namespaced: bool = True, where: Callable[[LossSpec], bool] | None = None
) -> list[str]:
    """Registered loss names matching the fnmatch ``pattern`` (e.g. ``"*softmax*"``), sorted;
    only names without a namespace (no ``pml:*``, ``example:*``) if ``namespaced`` is false;
    only those whose spec satisfies ``where`` if given (``lambda spec: spec.takes_miner``)."""
    names = LOSSES.names(pattern, namespaced=namespaced)
    return names if where is None else [name for name in names if where(LOSSES.get(name))]


def spec_of(loss: nn.Module | type) -> LossSpec | None:
    """The spec a loss (instance or class) was registered with, or None."""
    cls = loss if isinstance(loss, type) else type(loss)
    return getattr(cls, "_losszoo_spec", None)


def loss_groups() -> dict[str, list[str]]:
    """Each group's losses (without namespace, sorted): the groups their specs declare, and
    ``"all"``, every loss without a namespace."""
    names = list_losses(namespaced=False)
    groups: dict[str, list[str]] = {}
    for name in names:
        group = get_loss_spec(name).group
        if group is not None:
            groups.setdefault(group, []).append(name)
    return {**groups, ALL_GROUP: names}


def select_losses(names: Sequence[str] | None = None) -> list[str]:
    """``names`` with each group name replaced by its losses and each alias by its loss, in
    order, without repeats; None gives the default group, ``"paper"``. A loss shadows a group
    of the same name; an unknown name is kept as given, for the caller to refuse."""
    if names is None:
        names = [DEFAULT_GROUP]
    groups = loss_groups()
    selected: dict[str, None] = {}
    for name in names:
        if name in LOSSES:
            members = [LOSSES.canonical(name)]
        else:
            members = groups.get(name.lower(), [name])
        for member in members:
            selected.setdefault(member, None)
    return list(selected)


def get_loss_spec(name: str) -> LossSpec:
    """The frozen :class:`LossSpec` for ``name`` (an alias works too)."""
    return LOSSES.get(name)


def create_loss(
    name: str, *, embedding_dim: int, num_classes: int | None = None, **overrides: Any
) -> nn.Module:
    """Build a registered loss with its paper defaults, updated by ``overrides``.

    ``None`` overrides are dropped (so CLI options left unset keep the defaults); unknown,
    mistyped or out-of-range hyperparameters raise ``ConfigError`` naming the parameter.
    """
    spec = get_loss_spec(name)
    kwargs: dict[str, Any] = spec.resolve(overrides)
    if spec.needs_embedding_dim:
        kwargs["embedding_dim"] = embedding_dim
    if spec.needs_num_classes:
        if num_classes is None:
            raise ConfigError(f"loss {spec.name!r} owns class weights: pass num_classes")
        kwargs["num_classes"] = num_classes
    return spec.cls(**kwargs)
