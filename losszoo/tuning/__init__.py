"""Equal-budget hyperparameter tuning on class-disjoint validation classes (Optuna)."""

from losszoo.tuning.study import COMMON_SPACE, TuneResult, search_space, tune, tune_loss, write_best_toml

__all__ = ["COMMON_SPACE", "TuneResult", "search_space", "tune", "tune_loss", "write_best_toml"]
