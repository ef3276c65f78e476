"""What a tune cannot do well, said before it starts: a loss without a declared search space
(only the shared settings get tuned), and a validation split too small to rank settings on."""

from __future__ import annotations

from collections.abc import Sequence

from losszoo.losses import get_loss_spec
from losszoo.training.plan import RunPlan

# Below this many validation classes a validation MAP@R is a noisy ranking of settings (one
# class is a large share of every query's relevant set), and the best trial may fit the few.
MIN_VALIDATION_CLASSES = 10


def search_space_warnings(losses: Sequence[str], shared: Sequence[str]) -> list[str]:
    """One line per loss that declares no search space: what is tuned for it, what is not."""
    lines = []
    for name in losses:
        spec = get_loss_spec(name)
        if spec.search_space:
            continue
        fixed = ", ".join(dict(spec.defaults)) or "none"
        lines.append(f"{spec.name} declares no search space: only the shared {', '.join(shared)} are "
                     f"tuned for it; its own hyperparameters ({fixed}) keep their defaults "
                     "(a loss declares them with register_loss(..., search_space=...))")
    return lines


def validation_warnings(plan: RunPlan, minimum: int = MIN_VALIDATION_CLASSES) -> list[str]:
    """A line when the validation split of ``plan`` holds fewer than ``minimum`` classes."""
    split = plan.split_sizes().get("validation")
    if split is None or split["classes"] >= minimum:
        return []
    return [f"the validation split holds only {split['classes']} classes ({split['images']} images): "
            f"settings are ranked on fewer than {minimum} classes, a noisy score a tuned value may "
            "fit; raise --val-fraction or train on more classes (--max-classes)"]
