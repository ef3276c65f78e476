"""The backbone registry: ``@register_backbone``, ``list_backbones``, ``build_backbone``.

A backbone factory takes ``pretrained`` and returns a :class:`Backbone`: a module mapping
images ``[B, C, H, W]`` to pooled features ``[B, F]``, with ``F`` and the :class:`InputSpec`.
Besides the registered names, ``"timm:<model>"`` builds any timm model (when timm is installed):
the registry's ``timm`` namespace, declared by :mod:`losszoo.models.timm_backbones`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from losszoo.models.input_spec import InputSpec
from losszoo.models.weights import WeightsError, WeightsRecord, load_weights
from losszoo.registry import Registry

ENTRY_POINT_GROUP = "losszoo.backbones"


@dataclass(frozen=True)
class Backbone:
    """A built feature extractor.

    Attributes:
        module: maps images ``[B, C, H, W]`` to globally pooled features ``[B, feature_dim]``.
        feature_dim: F, the width of the pooled features.
        input_spec: the preprocessing the module expects.
        pretrained: whether pretrained weights were loaded into ``module``.
        weights: where they came from (file and sha256), when the factory knows.
        head_keys: key prefixes of the classifier the factory removed: a full network's
            weights file may hold them (``--weights``), and they are dropped.
        channels_last: run it in channels-last (NHWC) memory format, where that is faster
            (oneDNN's convolutions on a CPU); :func:`~losszoo.models.create_model` converts
            the weights, and convolutions follow the weights' layout.
    """

    module: nn.Module
    feature_dim: int
    input_spec: InputSpec
    pretrained: bool
    weights: WeightsRecord | None = None
    head_keys: tuple[str, ...] = ()
    channels_last: bool = False


BackboneFactory = Callable[[bool], Backbone]

BACKBONES: Registry[BackboneFactory] = Registry("backbone", entry_point_group=ENTRY_POINT_GROUP)


def register_backbone(
    name: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding a backbone factory ``factory(pretrained: bool) -> Backbone``.

    Example::

        @register_backbone("tiny")
        def tiny(pretrained: bool) -> Backbone:
            return Backbone(nn.Sequential(...), 32, InputSpec(1, 28, 28, (0.5,), (0.5,)), False)
    """

    def wrap(factory: BackboneFactory) -> BackboneFactory:
        if not callable(factory):
            raise TypeError(f"@register_backbone({name!r}) must decorate a callable")
        BACKBONES.add(name, factory, aliases=tuple(aliases))
        return factory

    return wrap


def list_backbones(pattern: str = "*") -> list[str]:
    """Backbone names matching the fnmatch ``pattern``, sorted.

    Any timm model can be used as ``"timm:<name>"``; it appears here as the single entry
    ``"timm:<name>"`` when timm is installed. A pattern starting with ``"timm:"`` (e.g.
    ``"timm:resnet*"``) lists the matching timm models instead.
    """
    return BACKBONES.names(pattern)


def build_backbone(name: str, *, pretrained: bool = True,
                   weights: str | Path | None = None) -> Backbone:
    """Build the backbone ``name`` (a registered name, an alias, or ``"timm:<model>"``).

    ``weights``: a local state dict file loaded instead of the backbone's default weights
    (``pretrained`` is then ignored; see :mod:`losszoo.models.weights`).
    """
    if weights is not None:
        if not Path(weights).is_file():  # before building anything
            raise WeightsError(f"weights file not found: {weights}")
        return load_weights(build_backbone(name, pretrained=False), weights, name=name)
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a string, got {type(name).__name__}")
    backbone = BACKBONES.get(name)(bool(pretrained))
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"backbone factory {name!r} returned {type(backbone).__name__}, not a Backbone"
        )
    return backbone
