"""Class-disjoint validation classes carved from the training classes.

Musgrave, Belongie & Lim, "A Metric Learning Reality Check" (ECCV 2020), Sec. 4: every
setting is chosen on validation classes drawn from the training classes, never on the test
classes. Either one seeded fraction is held out, or the training classes are dealt into ``K``
class-disjoint folds (their benchmark uses 4) and fold ``k`` is held out.
"""

from __future__ import annotations

import numpy as np


def validation_classes(num_classes: int, *, fraction: float = 0.2, folds: int = 1, fold: int = 0,
                       seed: int = 0) -> list[int]:
    """Sorted labels of the training classes held out for validation.

    With ``folds == 1``, ``round(fraction * num_classes)`` classes (at least 1) drawn with
    ``seed``. With ``folds = K > 1``, a seeded permutation of the classes cut into ``K``
    near-equal folds; fold ``fold`` is returned, so the K folds partition the classes.
    The draw depends only on ``(num_classes, fraction, folds, seed)``.
    """
    if num_classes < 2:
        raise ValueError(f"holding out validation classes needs >= 2 training classes, got {num_classes}")
    if folds < 1 or not 0 <= fold < folds:
        raise ValueError(f"need folds >= 1 and 0 <= fold < folds, got folds={folds}, fold={fold}")
    if folds > num_classes:
        raise ValueError(f"{folds} folds need at least {folds} classes, got {num_classes}")
    order = np.random.default_rng(seed).permutation(num_classes)
    if folds > 1:
        held_out = np.array_split(order, folds)[fold]
    else:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        count = min(max(1, round(fraction * num_classes)), num_classes - 1)
        held_out = order[:count]
    return sorted(int(c) for c in held_out)


def describe_split(num_classes: int, held_out: list[int] | tuple[int, ...]) -> str:
    """One line for logs: how many classes train and how many validate."""
    return f"{num_classes - len(held_out)} training classes, {len(held_out)} validation classes"
