"""The sampler registry: ``@register_sampler``, ``list_samplers``, ``create_sampler``.

A loss spec names its sampler (``LossSpec.sampler``); the harness builds it with
:func:`create_sampler` and passes it to ``DataLoader(dataset, batch_sampler=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch.utils.data import Sampler

from losszoo.registry import Registry
from losszoo.samplers.base import LabelsLike, check_positive_int

ENTRY_POINT_GROUP = "losszoo.samplers"

SamplerClass = TypeVar("SamplerClass", bound=type)

SAMPLERS: Registry[type[Sampler[list[int]]]] = Registry("sampler", entry_point_group=ENTRY_POINT_GROUP)


def register_sampler(
    name: str, *, aliases: tuple[str, ...] = (), uses_samples_per_class: bool = True
) -> Callable[[SamplerClass], SamplerClass]:
    """Class decorator adding a batch sampler to the zoo.

    The class must be a ``torch.utils.data.Sampler`` yielding lists of indices, built as
    ``cls(labels, batch_size=..., samples_per_class=..., seed=..., batches_per_epoch=...)``,
    with ``__len__`` and ``set_epoch(epoch)`` (subclass ``LabelBatchSampler`` to get those).
    ``uses_samples_per_class``: declare False for a sampler that fixes or ignores it (``npair``,
    ``random``), so that a tuner does not search it (:func:`uses_samples_per_class`).
    """

    def wrap(cls: SamplerClass) -> SamplerClass:
        if not (isinstance(cls, type) and issubclass(cls, Sampler)):
            raise TypeError(
                f"@register_sampler({name!r}) must decorate a torch.utils.data.Sampler subclass"
            )
        if not callable(getattr(cls, "set_epoch", None)):
            raise TypeError(f"@register_sampler({name!r}): {cls.__name__} needs a set_epoch(epoch) method")
        SAMPLERS.add(name, cls, aliases=tuple(aliases))
        cls.uses_samples_per_class = bool(uses_samples_per_class)  # type: ignore[attr-defined]
        return cls

    return wrap


def list_samplers(pattern: str = "*") -> list[str]:
    """Registered sampler names matching the fnmatch ``pattern``, sorted."""
    return SAMPLERS.names(pattern)


def uses_samples_per_class(name: str) -> bool:
    """Whether sampler ``name``'s batches depend on ``samples_per_class`` (declared at
    registration)."""
    return SAMPLERS.get(name).uses_samples_per_class


def create_sampler(
    name: str,
    labels: LabelsLike,
    *,
    batch_size: int,
    samples_per_class: int,
    seed: int = 0,
    batches_per_epoch: int | None = None,
) -> Sampler[list[int]]:
    """Build the sampler ``name`` over ``labels`` (one integer label per dataset item).

    Unknown names raise ``KeyError`` with suggestions. ``samples_per_class`` is S of the
    class-balanced C x S batches; samplers that fix it (``npair``) or ignore it (``random``)
    accept it all the same, so a harness can build any sampler the same way.
    """
    sampler_class = SAMPLERS.get(name)
    check_positive_int(samples_per_class, "samples_per_class")
    return sampler_class(
        labels,
        batch_size=batch_size,
        samples_per_class=samples_per_class,
        seed=seed,
        batches_per_epoch=batches_per_epoch,
    )
