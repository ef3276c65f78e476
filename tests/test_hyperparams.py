"""Typed, constrained hyperparameters (losszoo.hyperparams): one message format for every loss,
from the API (create_loss and direct construction), --loss-option strings and TOML values alike."""

from __future__ import annotations

import math

import pytest

import losszoo
from losszoo import MetricLoss, create_loss, get_loss_spec, register_loss
from losszoo.errors import ConfigError
from losszoo.hyperparams import Choice, Hyper, IntRange, LogUniform, Uniform

NAN, INF = float("nan"), float("inf")

# (loss, bad hyperparameters, what the message must say): the cases found accepted before.
REFUSED = [
    ("margin", {"alpha": NAN}, "alpha must be a finite number"),
    ("margin", {"beta": NAN}, "beta must be a finite number"),
    ("margin", {"nu": -1}, "nu must be >= 0"),
    ("margin", {"beta_mode": "per-class"}, "beta_mode must be one of"),
    ("lifted", {"alpha": NAN}, "alpha must be a finite number"),
    ("npair", {"l2_reg": NAN}, "l2_reg must be a finite number"),
    ("contrastive", {"margin": INF}, "margin must be a finite number"),
    ("triplet", {"margin": INF}, "margin must be a finite number"),
    ("triplet", {"mining": "easy"}, "mining must be one of"),
    ("normsoftmax", {"temperature": INF}, "temperature must be a finite number"),
    ("normsoftmax", {"temperature": 0}, "temperature must be > 0"),
    ("normsoftmax", {"class_subsample": 1.5}, "class_subsample must be <= 1"),
    ("cosface", {"scale": -1}, "scale must be > 0"),
    ("proxynca", {"scale": "big"}, "scale must be a number, got 'big'"),
    ("lifted", {"normalize": "maybe"}, "normalize must be a boolean"),
    ("proxynca", {"include_positive": 2}, "include_positive must be a boolean"),
]


def _build(name: str, **options):
    return create_loss(name, embedding_dim=8, num_classes=4, **options)


@pytest.mark.parametrize(("name", "options", "message"), REFUSED)
def test_bad_values_are_refused_naming_loss_and_parameter(name, options, message):
    with pytest.raises(ConfigError, match=rf"loss '{name}': {message}"):
        _build(name, **options)
    # Direct construction goes through the same checks.
    spec = get_loss_spec(name)
    context = {k: v for k, v in (("embedding_dim", 8), ("num_classes", 4))
               if (k == "embedding_dim" and spec.needs_embedding_dim)
               or (k == "num_classes" and spec.needs_num_classes)}
    with pytest.raises(ConfigError, match=message):
        spec.cls(**context, **options)


@pytest.mark.parametrize(("text", "expected"), [
    ("no", False), ("No", False), ("false", False), ("0", False), (0, False), (False, False),
    ("yes", True), ("TRUE", True), ("1", True), (1, True), (True, True),
])
def test_booleans_accept_the_usual_spellings_and_mean_them(text, expected):
    assert _build("lifted", normalize=text).normalize is expected
    assert _build("proxynca", include_positive=text).include_positive is expected


def test_numbers_from_strings_and_ints():
    assert _build("normsoftmax", temperature="0.1").temperature == 0.1
    loss = _build("cosface", scale=30)
    assert loss.scale == 30.0 and isinstance(loss.scale, float)


def test_context_arguments_must_be_positive_integers():
    with pytest.raises(ConfigError, match="num_classes must be an integer, got 2.5"):
        create_loss("normsoftmax", embedding_dim=8, num_classes=2.5)
    with pytest.raises(ConfigError, match="embedding_dim must be >= 1"):
        create_loss("normsoftmax", embedding_dim=0, num_classes=3)
    assert create_loss("normsoftmax", embedding_dim=8, num_classes=3.0).num_classes == 3


def test_resolve_fills_every_default_and_names_the_canonical_loss():
    spec = get_loss_spec("lmcl")
    assert spec.resolve({"margin": "0.2"}) == {"scale": 64.0, "margin": 0.2, "class_subsample": 1.0}
    with pytest.raises(ConfigError, match="loss 'cosface' has no hyperparameter 'scael'"):
        spec.resolve({"scael": 1})


def test_every_zoo_loss_declares_a_search_space_within_its_constraints():
    for name in losszoo.list_losses():
        if ":" in name:
            continue
        spec = get_loss_spec(name)
        assert spec.search_space, f"{name} declares no search space"
        for param, search in spec.search_space.items():
            hyper = spec.hyperparameters[param]
            ends = search.values if isinstance(search, Choice) else (search.low, search.high)
            for value in ends:  # every value a tuner can draw is accepted
                hyper.coerce(value, param, name)


def test_plugin_losses_get_types_constraints_and_search_for_free(loss_registry):
    @register_loss("toy-margin", hyperparameters={"margin": Hyper(ge=0)},
                   search_space={"margin": Uniform(0.0, 1.0), "steps": IntRange(1, 8, log=True)})
    class Toy(MetricLoss):
        def __init__(self, margin: float = 0.1, steps: int = 2, scaled: bool = False) -> None:
            super().__init__()
            self.margin, self.steps, self.scaled = margin, steps, scaled

    spec = get_loss_spec("toy-margin")
    assert spec.search_space == {"margin": Uniform(0.0, 1.0), "steps": IntRange(1, 8, log=True)}
    assert spec.hyperparameters["margin"].describe() == "a number >= 0"
    with pytest.raises(ConfigError, match="loss 'toy-margin': steps must be an integer, got 2.5"):
        create_loss("toy-margin", embedding_dim=4, steps=2.5)
    with pytest.raises(ConfigError, match="margin must be >= 0"):
        Toy(margin=-0.5)
    assert create_loss("toy-margin", embedding_dim=4, scaled="yes", steps="3").steps == 3


def test_a_default_that_breaks_its_own_constraint_is_refused_at_registration(loss_registry):
    with pytest.raises(ConfigError, match="margin must be >= 0, got -1"):
        @register_loss("toy-bad", hyperparameters={"margin": Hyper(ge=0)})
        class Bad(MetricLoss):
            def __init__(self, margin: float = -1.0) -> None:
                super().__init__()


def test_search_ranges_suggest_through_the_trial_protocol():
    calls = []

    class Recorder:
        def suggest_float(self, name, low, high, *, log=False):
            calls.append(("float", name, low, high, log))
            return math.sqrt(low * high) if log else (low + high) / 2

        def suggest_int(self, name, low, high, *, log=False):
            calls.append(("int", name, low, high, log))
            return low

        def suggest_categorical(self, name, choices):
            calls.append(("categorical", name, tuple(choices)))
            return choices[0]

    trial = Recorder()
    assert LogUniform(0.01, 1.0).suggest(trial, "t") == pytest.approx(0.1)
    assert Uniform(0.0, 1.0).suggest(trial, "m") == 0.5
    assert IntRange(2, 9).suggest(trial, "k") == 2
    assert Choice(("a", "b")).suggest(trial, "c") == "a"
    assert calls == [("float", "t", 0.01, 1.0, True), ("float", "m", 0.0, 1.0, False),
                     ("int", "k", 2, 9, False), ("categorical", "c", ("a", "b"))]
    assert str(LogUniform(0.01, 0.2)) == "log-uniform[0.01, 0.2]"
