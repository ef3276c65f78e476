"""Zoo losses fed a pytorch-metric-learning miner's output (``indices_tuple``), in float64.

Each mined loss is checked against the same loss written out by hand over exactly the mined
tuples, and against PML's own loss where one computes the same formula.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.miners import (
    MultiSimilarityMiner,
    PairMarginMiner,
    TripletMarginMiner,
)
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from losszoo_adapters import pml
from losszoo import Contrastive, CosFace, LiftedStructure, Margin, NormSoftmax, NPair, ProxyNCA, Triplet
from losszoo.errors import ConfigError
from losszoo.losses.functional import convert_to_pairs, convert_to_triplets
from losszoo.losses.npair import npair_indices

from helpers import clustered

DIM, CLASSES, PER_CLASS = 6, 4, 4


def batch(seed: int = 0, noise: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    return clustered(labels, DIM, noise, g), labels


def distance(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    if normalize:
        x = F.normalize(x, dim=1)
    return (x[i] - x[j]).norm(dim=1)


def value_and_grad(loss, x, labels, indices_tuple=None):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels) if indices_tuple is None else loss(x, labels, indices_tuple)
    value.backward()
    return value.detach(), x.grad


def test_triplet_with_triplet_margin_miner_equals_the_hand_computed_loss():
    x, labels = batch()
    mined = TripletMarginMiner(margin=0.2, type_of_triplets="all")(x, labels)
    assert mined[0].numel() > 10
    a, p, n = mined
    by_hand = F.relu(distance(x, a, p) - distance(x, a, n) + 0.2)
    expected = by_hand[by_hand > 0].mean()
    value, grad = value_and_grad(Triplet(margin=0.2), x, labels, mined)
    assert torch.allclose(value, expected, rtol=1e-12, atol=1e-12)
    # PML's TripletMarginLoss (normalized L2, mean over non-zero) computes the same formula.
    theirs, their_grad = value_and_grad(pml_losses.TripletMarginLoss(margin=0.2), x, labels, mined)
    assert torch.allclose(value, theirs, rtol=1e-10) and torch.allclose(grad, their_grad, atol=1e-10)
    # The mined triplets replace the loss's own mining: other triplets give another value.
    assert not torch.allclose(value, Triplet(margin=0.2)(x, labels))


def test_triplet_takes_pairs_as_pml_converts_them():
    x, labels = batch(1)
    pairs = PairMarginMiner(pos_margin=0.2, neg_margin=0.8)(x, labels)
    assert torch.allclose(Triplet()(x, labels, pairs), Triplet()(x, labels, convert_to_triplets(pairs)))
    ours = convert_to_triplets(pairs)
    theirs = lmu.convert_to_triplets(pairs, labels)
    assert all(torch.equal(u, v) for u, v in zip(ours, theirs))
    assert all(torch.equal(u, v) for u, v in zip(convert_to_pairs(ours), lmu.convert_to_pairs(ours, labels)))


def test_contrastive_with_pair_margin_miner_equals_the_hand_computed_loss():
    x, labels = batch()
    mined = PairMarginMiner(pos_margin=0.2, neg_margin=0.8)(x, labels)
    a1, p, a2, n = mined
    assert a1.numel() > 5 and a2.numel() > 5
    terms = torch.cat([distance(x, a1, p) ** 2, F.relu(1.0 - distance(x, a2, n)) ** 2])
    value, grad = value_and_grad(Contrastive(margin=1.0), x, labels, mined)
    assert torch.allclose(value, terms.mean(), rtol=1e-12, atol=1e-12)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Every pair mined: the loss's own all-pairs mean.
    all_pairs = lmu.get_all_pairs_indices(labels)
    assert torch.allclose(Contrastive()(x, labels, all_pairs), Contrastive()(x, labels), rtol=1e-12)


def test_margin_with_mined_pairs_and_triplets():
    x, labels = batch(2)
    loss = Margin(DIM, CLASSES, beta_mode="fixed", beta=1.2, alpha=0.2).double()
    pairs = PairMarginMiner(pos_margin=0.2, neg_margin=0.8)(x, labels)
    a1, p, a2, n = pairs
    b = loss.beta.item()  # 1.2 as the float32 the buffer was created in
    terms = torch.cat([F.relu(distance(x, a1, p) - b + 0.2), F.relu(b - distance(x, a2, n) + 0.2)])
    assert torch.allclose(loss(x, labels, pairs), terms.sum() / (terms > 0).sum(), rtol=1e-12)
    # Triplets are their two pairs each, beta penalty included (learnable per-class beta, nu > 0).
    learnable = Margin(DIM, CLASSES, nu=0.1).double()
    with torch.no_grad():
        learnable.beta.copy_(torch.linspace(0.9, 1.3, CLASSES, dtype=torch.float64))
    triplets = TripletMarginMiner(margin=0.2)(x, labels)
    assert torch.allclose(learnable(x, labels, triplets), learnable(x, labels, convert_to_pairs(triplets)))
    a, p_, n_ = triplets
    beta = learnable.beta.detach()[labels[a]]
    pos, neg = F.relu(distance(x, a, p_) - beta + 0.2), F.relu(beta - distance(x, a, n_) + 0.2)
    expected = (pos.sum() + neg.sum() + 0.1 * beta.sum()) / ((pos > 0).sum() + (neg > 0).sum())
    assert torch.allclose(learnable(x, labels, triplets), expected, rtol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_lifted_with_mined_pairs_equals_pml_lifted_structure(normalize):
    x, labels = batch(3)
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    assert pairs[0].numel() > 5 and pairs[2].numel() > 5
    ours, our_grad = value_and_grad(LiftedStructure(alpha=1.0, normalize=normalize), x, labels, pairs)
    pml_lifted = pml_losses.LiftedStructureLoss(
        neg_margin=1.0, pos_margin=0.0, distance=LpDistance(normalize_embeddings=normalize))
    theirs, their_grad = value_and_grad(pml_lifted, x, labels, pairs)
    assert torch.allclose(ours, theirs, rtol=1e-10)
    assert torch.allclose(our_grad, their_grad, atol=1e-10)
    # By hand for one pair set: J = log(sum over negatives anchored at i or j) + D_ij.
    a1, p, a2, n = pairs
    xs = F.normalize(x, dim=1) if normalize else x
    d = torch.cdist(xs, xs)
    j = torch.stack([
        torch.logsumexp(torch.cat([1.0 - d[i, n[a2 == i]], 1.0 - d[k, n[a2 == k]]]), 0) + d[i, k]
        for i, k in zip(a1.tolist(), p.tolist())
    ])
    assert torch.allclose(ours, (F.relu(j) ** 2).mean() / 2, rtol=1e-10)


def test_lifted_with_every_pair_mined_equals_its_own_all_pairs_loss():
    x, labels = batch(4)
    loss = LiftedStructure()
    assert torch.allclose(loss(x, labels, lmu.get_all_pairs_indices(labels)), loss(x, labels), rtol=1e-12)


def test_lifted_positive_pair_without_negatives_costs_nothing_and_has_finite_gradient():
    x, labels = batch(5)
    pairs = (torch.tensor([0, 4]), torch.tensor([1, 5]), torch.tensor([0]), torch.tensor([8]))
    value, grad = value_and_grad(LiftedStructure(), x, labels, pairs)
    j = torch.log(torch.exp(1.0 - torch.cdist(x, x)[0, 8])) + torch.cdist(x, x)[0, 1]
    assert torch.allclose(value, F.relu(j) ** 2 / 4)  # mean over 2 pairs, halved; pair (4, 5) is 0
    assert torch.isfinite(grad).all()


def test_npair_with_mined_pairs_is_the_tuplet_loss():
    x, labels = batch(6)
    loss = NPair(l2_reg=0.002)
    pairs = MultiSimilarityMiner(epsilon=0.3)(x, labels)
    a1, p, a2, n = pairs
    gram = x @ x.T
    tuplets = torch.stack([torch.log1p(torch.exp(gram[i, n[a2 == i]] - gram[i, k]).sum())
                           for i, k in zip(a1.tolist(), p.tolist())])
    norms = (x * x).sum(1)
    expected = tuplets.mean() + 0.25 * 0.002 * (norms[a1].mean() + norms[p].mean())
    value, grad = value_and_grad(loss, x, labels, pairs)
    assert torch.allclose(value, expected, rtol=1e-12) and torch.isfinite(grad).all()
    # Triplets: one (2+1)-tuplet each, log(1 + exp(f_a.f_n - f_a.f_p)).
    a, p_, n_ = TripletMarginMiner(margin=0.5)(x, labels)
    expected = F.softplus(gram[a, n_] - gram[a, p_]).mean() + 0.25 * 0.002 * (norms[a].mean() + norms[p_].mean())
    assert torch.allclose(loss(x, labels, (a, p_, n_)), expected, rtol=1e-12)


def test_npair_mc_is_the_tuplet_loss_over_its_own_pairs():
    """Sohn's N-pair-mc batch construction, written as mined pairs, gives the loss unchanged."""
    x, labels = batch(7)
    anchors, positives = npair_indices(labels)
    k = anchors.shape[0]
    others = [(i, j) for i in range(k) for j in range(k) if i != j]
    a2 = anchors[torch.tensor([i for i, _ in others])]
    n = positives[torch.tensor([j for _, j in others])]
    mined = (anchors, positives, a2, n)
    assert torch.allclose(NPair()(x, labels, mined), NPair()(x, labels), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: NormSoftmax(DIM, CLASSES), lambda: CosFace(DIM, CLASSES),
                                  lambda: ProxyNCA(DIM, CLASSES)])
def test_classification_losses_refuse_miner_output(make):
    x, labels = batch()
    mined = TripletMarginMiner()(x, labels)
    loss = make().double()
    with pytest.raises(ConfigError, match="cannot use a miner's indices_tuple: .*(class weights|proxies)"):
        loss(x, labels, mined)
    with pytest.raises(ConfigError, match="indices_tuple"):
        pml_losses.MultipleLosses([pml.as_pml_loss(loss)], miners=[TripletMarginMiner()])(x, labels)


@pytest.mark.parametrize("bad, message", [
    ((torch.tensor([0]), torch.tensor([1])), "triplets"),
    ((torch.tensor([0]), torch.tensor([1]), torch.tensor([4, 5])), "differ in length"),
    ((torch.tensor([0]), torch.tensor([99]), torch.tensor([4])), "lie in"),
    ((torch.tensor([0]), torch.tensor([4]), torch.tensor([5])), "positive"),
    ((torch.tensor([0]), torch.tensor([1]), torch.tensor([2])), "negative"),
    ((torch.tensor([0.0]), torch.tensor([1]), torch.tensor([4])), "integer"),
])
def test_bad_indices_tuple_is_refused(bad, message):
    x, labels = batch()
    with pytest.raises(ValueError, match=message):
        Triplet()(x, labels, bad)


def test_zoo_losses_inside_a_pml_training_step_with_multiple_losses_and_miners():
    x, labels = batch(8)
    model = torch.nn.Linear(DIM, DIM).double()
    triplet, contrastive = Triplet(), Contrastive()
    triplet_miner, pair_miner = TripletMarginMiner(margin=0.2), PairMarginMiner(0.2, 0.8)
    combined = pml_losses.MultipleLosses([pml.as_pml_loss(triplet), pml.as_pml_loss(contrastive)],
                                         miners=[triplet_miner, pair_miner], weights=[1.0, 0.5])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    embeddings = model(x)
    total = combined(embeddings, labels)
    with torch.no_grad():
        expected = (triplet(embeddings, labels, triplet_miner(embeddings, labels))
                    + 0.5 * contrastive(embeddings, labels, pair_miner(embeddings, labels)))
    assert torch.allclose(total.detach(), expected, rtol=1e-12)
    optimizer.zero_grad()
    total.backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in model.parameters())
    optimizer.step()
    assert combined(model(x), labels) < total  # one SGD step on the mined losses lowers them


# -- the harness: pml: losses and --miner ------------------------------------------------------
@pytest.fixture
def pml_registry(loss_registry):
    pml.register()
    return loss_registry


@pytest.mark.parametrize("loss_name, miner", [("pml:tripletmarginloss", TripletMarginMiner(margin=0.3, type_of_triplets="hard")),
                                              ("pml:contrastiveloss", PairMarginMiner(0.2, 0.8))])
def test_pml_loss_through_the_zoo_with_a_miner_equals_pml_called_directly(pml_registry, loss_name, miner):
    from losszoo import create_loss

    x, labels = batch(9)
    ours = create_loss(loss_name, embedding_dim=DIM)
    mined = miner(x, labels)
    value, grad = value_and_grad(ours, x, labels, mined)
    direct = type(ours.pml_loss)(**({"margin": 0.05} if "triplet" in loss_name else {}))
    theirs, their_grad = value_and_grad(direct, x, labels, mined)
    assert torch.equal(value, theirs) and torch.equal(grad, their_grad)
    # The mined tuples are used: without them PML mines every pair/triplet and gives another value.
    assert not torch.allclose(value, ours(x, labels))
    # And through MinedLoss, as the trainer calls it.
    from losszoo.training.mining import MinedLoss

    assert torch.equal(MinedLoss(ours, miner)(x, labels), theirs)


def test_miners_by_name_from_the_registry():
    """PML's miners are registered as pml:<name> by the adapter's namespace hook (the one that
    registers pml: losses), looked up case-insensitively, options checked before building."""
    from losszoo.miners import create_miner, get_miner_spec, list_miners

    miner = create_miner("pml:MultiSimilarityMiner", epsilon=0.2)
    assert isinstance(miner, MultiSimilarityMiner) and miner.epsilon == 0.2
    assert isinstance(create_miner("pml:triplEtmarginminer"), TripletMarginMiner)
    assert get_miner_spec("pml:PairMarginMiner").cls is PairMarginMiner
    assert "pml:pairmarginminer" in list_miners("pml:*") == pml.register_miners()
    assert list_miners(namespaced=False) == []  # the zoo has no miner of its own
    with pytest.raises(ConfigError, match="unknown miner 'pml:Nope'"):
        create_miner("pml:Nope")
    with pytest.raises(ConfigError, match="TripletMarginMiner"):
        create_miner("pml:TripletMarginMiner", bogus=1)
    with pytest.raises(ConfigError, match="margin must be a finite number|margin"):
        create_miner("pml:TripletMarginMiner", margin=float("nan"))


def test_a_plugin_miner_reaches_the_planner():
    """A miner registered by any plugin is built by plan_run (nothing in the planner knows PML)."""
    from losszoo.miners import MINERS, register_miner
    from losszoo.training.config import build_config
    from losszoo.training.plan import plan_run

    with MINERS.scoped():
        register_miner("toy:hardest")(type("Hardest", (TripletMarginMiner,), {}))
        plan = plan_run(build_config({"loss": "triplet", "miner": "toy:Hardest", "max_classes": 10,
                                      "batch_size": 20, "dim": 8}))
        assert type(plan.miner).__name__ == "Hardest"


def test_plan_builds_the_miner_once_and_refuses_a_classifier():
    from losszoo.training.config import build_config
    from losszoo.training.plan import plan_run

    config = build_config({"loss": "triplet", "miner": "pml:TripletMarginMiner",
                           "miner_options": {"margin": 0.1}, "max_classes": 10, "batch_size": 20, "dim": 8})
    plan = plan_run(config)
    assert isinstance(plan.miner, TripletMarginMiner) and plan.miner.margin == 0.1
    assert config.fingerprint() != config.replace(miner=None, miner_options={}).fingerprint()
    with pytest.raises(ConfigError, match="normsoftmax.*cannot use a miner.*classification"):
        plan_run(config.replace(loss="normsoftmax"))
    with pytest.raises(ConfigError, match="without a miner"):
        config.replace(miner=None)


@pytest.mark.slow
def test_train_with_a_miner_from_the_command_line(tmp_path, capsys):
    import json

    from losszoo.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--loss", "triplet", "--miner", "pml:TripletMarginMiner",
                 "--miner-option", "margin=0.1", "--miner-option", "type_of_triplets=semihard",
                 "--epochs", "1", "--batches-per-epoch", "2", "--max-classes", "10",
                 "--batch-size", "20", "--samples-per-class", "5", "--dim", "16", "--ks", "1,2",
                 "--no-progress", "--output", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["miner"] == "pml:TripletMarginMiner"
    assert result["config"]["miner_options"] == {"margin": 0.1, "type_of_triplets": "semihard"}
    assert main(["train", "--loss", "normsoftmax", "--miner", "pml:TripletMarginMiner",
                 "--output", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "cannot use a miner" in capsys.readouterr().err
