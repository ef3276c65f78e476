"""Margin based loss with distance weighted sampling (Wu, Manmatha, Smola & Krähenbühl,
"Sampling Matters in Deep Embedding Learning", ICCV 2017, Sec. 5):

    l(i, j) = ( alpha + y_ij (D_ij - beta(i)) )_+ ,   y_ij = +1 for positives, -1 for negatives,

summed over triplets (a, p, n), each an anchor-positive pair with one distance-weighted
negative (Sec. 4, :mod:`losszoo.losses.distance_weighted`):

    L = [ sum_(a,p,n) relu(D_ap - beta(a) + alpha) + relu(beta(a) - D_an + alpha)
          + nu * sum_(a,p,n) beta(a) ] / (number of non-zero relu terms),

with D the Euclidean distance between L2-normalized embeddings, alpha = 0.2 and beta learnable
(per class, initialised at 1.2). The normalisation by non-zero terms and the per-triplet beta
penalty are those of the authors' code.

With a miner's output (``loss(embeddings, labels, indices_tuple)``) the mined tuples replace the
distance-weighted sampling. Each term is one pair, so mined pairs enter as they are: positive
pairs (a1, p) give relu(D_a1p - beta(a1) + alpha), negative pairs (a2, n) give
relu(beta(a2) - D_a2n + alpha), each with a penalty nu/2 * beta(anchor); triplets (a, p, n)
are the pairs (a, p) and (a, n), so they give exactly the formula above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losszoo.hyperparams import Hyper, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.distance_weighted import sample_distance_weighted_triplets
from losszoo.losses.functional import convert_to_pairs, pairwise_distances
from losszoo.losses.registry import register_loss

BETA_MODES = ("class", "global", "fixed")


# lr_multiplier 1 for beta: the authors' code steps beta with its own SGD (momentum 0.9, lr 0.1),
# but on a gradient rescaled by 1/batch size (Gluon's trainer.step(batch_size)), an effective
# ~1e-3, the order of this harness's base SGD learning rate (Zhai & Wu: 1e-3 to 1e-2).
# Search ranges: around Wu et al.'s alpha = 0.2 and beta_0 = 1.2 (Sec. 5, Sec. 6).
@register_loss(
    "margin", sampler="class_balanced", group="paper", lr_multiplier=1.0, tags=("pair", "sampling"), needs_positive_pairs=True,
    hyperparameters={
        "alpha": Hyper(ge=0, search=Uniform(0.05, 0.4)),
        "beta": Hyper(search=Uniform(0.8, 1.4)),
        "beta_mode": Hyper(choices=BETA_MODES),
        "nu": Hyper(ge=0),
        "cutoff": Hyper(gt=0),
        "nonzero_loss_cutoff": Hyper(le=2),
    },
)
class Margin(MetricLoss):
    """Margin based loss on distance-weighted triplets.

    Args:
        embedding_dim: n, the embedding width (the sampling weights depend on it).
        num_classes: C, the number of training classes (one beta each in ``"class"`` mode).
        alpha: the margin alpha (paper: 0.2).
        beta: initial (or fixed) boundary beta (paper: 1.2).
        beta_mode: ``"class"``: one learnable beta per class, beta(a) = beta of the anchor's
            class (the paper's beta^(class)); ``"global"``: one learnable beta shared by all
            (beta^(0)); ``"fixed"``: beta is a constant.
        nu: weight of the beta penalty nu * beta(a) per triplet (paper: 0); ignored in
            ``"fixed"`` mode, where it would only add a constant.
        cutoff: distances below it count as ``cutoff`` in the sampling weights (0.5).
        nonzero_loss_cutoff: negatives at this distance or beyond are not sampled (1.4),
            unless no negative of the anchor is nearer; then the draw is uniform over them.

    The loss is 0 (with a gradient path) when the batch yields no triplet (no positive or no
    negative pair) or when every relu term is 0.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        alpha: float = 0.2,
        beta: float = 1.2,
        beta_mode: str = "class",
        nu: float = 0.0,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
    ) -> None:
        super().__init__()
        if not 0 < cutoff < nonzero_loss_cutoff <= 2:
            raise ValueError(
                f"need 0 < cutoff < nonzero_loss_cutoff <= 2, got {cutoff}, {nonzero_loss_cutoff}"
            )
        if num_classes < 1 or embedding_dim < 1:
            raise ValueError(
                f"embedding_dim and num_classes must be >= 1, got {embedding_dim}, {num_classes}"
            )
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.alpha, self.nu, self.beta_mode = alpha, nu, beta_mode
        self.cutoff, self.nonzero_loss_cutoff = cutoff, nonzero_loss_cutoff
        initial = torch.full((num_classes if beta_mode == "class" else 1,), float(beta))
        if beta_mode == "fixed":
            self.register_buffer("beta", initial)
        else:
            self.beta = nn.Parameter(initial)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        triplets = sample_distance_weighted_triplets(
            distances,
            labels,
            dim=embeddings.shape[1],
            cutoff=self.cutoff,
            nonzero_loss_cutoff=self.nonzero_loss_cutoff,
        )
        return self.triplet_loss(distances, labels, triplets)

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        return self.pair_loss(distances, labels, convert_to_pairs(indices_tuple))  # type: ignore[arg-type]

    def triplet_loss(
        self, distances: Tensor, labels: Tensor, triplets: tuple[Tensor, Tensor, Tensor]
    ) -> Tensor:
        """L over the given (anchor, positive, negative) index triplets and distance matrix."""
        return self.pair_loss(distances, labels, convert_to_pairs(triplets))

    def pair_loss(
        self, distances: Tensor, labels: Tensor, pairs: tuple[Tensor, Tensor, Tensor, Tensor]
    ) -> Tensor:
        """L over positive pairs (a1, p) and negative pairs (a2, n); a triplet (a, p, n) is the
        pairs (a, p) and (a, n), its penalty nu * beta(a) split as nu/2 on each."""
        a1, p, a2, n = pairs
        if self.beta_mode == "class":
            beta_pos, beta_neg = self.beta[labels[a1]], self.beta[labels[a2]]
        else:
            beta_pos, beta_neg = self.beta.expand(a1.shape[0]), self.beta.expand(a2.shape[0])
        positive_terms = F.relu(distances[a1, p] - beta_pos + self.alpha)
        negative_terms = F.relu(beta_neg - distances[a2, n] + self.alpha)
        total = positive_terms.sum() + negative_terms.sum()
        if self.beta_mode != "fixed":
            total = total + 0.5 * self.nu * (beta_pos.sum() + beta_neg.sum())
        nonzero = (positive_terms > 0).sum() + (negative_terms > 0).sum()
        gradient_path = distances.sum() * 0.0 + self.beta.sum() * 0.0
        return torch.where(nonzero > 0, total / nonzero.clamp_min(1), gradient_path)
