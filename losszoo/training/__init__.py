"""The shared harness: one trainer for every loss, and the comparison built on it."""

from losszoo.training.compare import compare
from losszoo.training.config import TrainConfig, build_config
from losszoo.training.inference import evaluate_model, extract_embeddings
from losszoo.training.trainer import train

__all__ = ["TrainConfig", "build_config", "compare", "evaluate_model", "extract_embeddings", "train"]
