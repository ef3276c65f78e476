"""Saved embeddings reload and reproduce the saved metrics; the neighbours saved are the ones
a brute-force cosine search finds; the retrieval figure has one row per query and k + 1 columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import image as mpimg

from losszoo.cli.main import main
from losszoo.evaluation import evaluate
from losszoo.training.embeddings import ITEMS, load_embeddings

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1,2", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "run"
    assert main(["train", "--loss", "triplet", "--output", str(out), *TINY]) == 0
    return out


def test_saved_embeddings_reproduce_the_metrics(run_dir, tmp_path):
    metrics_path = tmp_path / "metrics.json"
    assert main(["eval", str(run_dir), "--save-embeddings", "--output", str(metrics_path)]) == 0
    saved = json.loads(metrics_path.read_text())
    arrays, items = load_embeddings(run_dir)
    assert len(items) == len(arrays.labels) == arrays.embeddings.shape[0]
    assert [int(item["label"]) for item in items] == arrays.labels.tolist()
    # The embedded Omniglot is an array, not files: rows name the class, paths stay empty.
    assert all(item["class"] and item["path"] == "" for item in items)
    assert (run_dir / ITEMS).exists()
    again = evaluate(arrays.embeddings, arrays.labels, ks=(1, 2), seed=0)
    for key, value in again.items():
        assert saved[key] == pytest.approx(value), key
    # The neighbours are those of an exact cosine search, self excluded; distances 1 - cos.
    x = arrays.embeddings / np.linalg.norm(arrays.embeddings, axis=1, keepdims=True)
    distance = 1 - x @ x.T
    np.fill_diagonal(distance, np.inf)
    found = arrays.neighbors.indices
    np.testing.assert_allclose(np.take_along_axis(distance, found, 1), arrays.neighbors.distances, atol=1e-5)
    assert np.all(np.diff(arrays.neighbors.distances, axis=1) >= -1e-6)
    kth = np.sort(distance, axis=1)[:, found.shape[1] - 1]
    assert np.all(arrays.neighbors.distances[:, -1] <= kth + 1e-5)
    hits = (arrays.labels[found[:, 0]] == arrays.labels).mean()
    assert hits == pytest.approx(saved["recall@1"])


def test_retrieval_figure_grid(run_dir, tmp_path):
    from losszoo.training.embeddings import load_embeddings  # noqa: F401 (same arrays as eval)

    png = tmp_path / "fig.png"
    assert main(["eval", str(run_dir), "--retrieval-figure", str(png), "--figure-queries", "4",
                 "--figure-k", "3"]) == 0
    picture = mpimg.imread(png)
    height, width = picture.shape[:2]
    assert width / height == pytest.approx(_ratio(4, 4), rel=0.15)  # 4 rows of 3 + 1 images
    assert png.with_suffix(".svg").stat().st_size and png.with_suffix(".pdf").stat().st_size

    from losszoo.training.retrieval_figure import retrieval_figure
    from losszoo.training.plan import build_model, evaluate as evaluate_plan, final_test_data, plan_run
    from losszoo.training.config import TrainConfig
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    plan = plan_run(TrainConfig.from_dict(state["config"]))
    model = build_model(plan)
    model.load_state_dict(state["model"])
    data = final_test_data(plan, model)
    arrays = evaluate_plan(plan, model, data, keep=True).arrays
    path, grid = retrieval_figure(tmp_path / "g.png", arrays, data, queries=6, k=2)
    assert grid == (6, 3) and path.stat().st_size
    height, width = mpimg.imread(path).shape[:2]
    assert width / height == pytest.approx(_ratio(6, 3), rel=0.15)


def _ratio(rows, columns):
    """Width / height of the figure: square images, each with a class-name line, and a title."""
    from losszoo.training.retrieval_figure import CELL_INCHES

    return CELL_INCHES * columns / ((CELL_INCHES + 0.25) * rows + 0.6)


def test_class_names_keep_their_distinguishing_end():
    from types import SimpleNamespace

    from losszoo.training.retrieval_figure import NAME_CHARS, class_name

    dataset = SimpleNamespace(classes=["Latin/character01", "Old_Church_Slavonic_(Cyrillic)/character12"])
    assert class_name(dataset, 0) == "Latin/character01"
    long = class_name(dataset, 1)
    assert len(long) == NAME_CHARS and long.endswith("character12") and "\u2026" in long
    assert class_name(SimpleNamespace(), 3) == "class 3"


def test_compare_saves_each_runs_embeddings_and_retrieval_figure(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--untuned", "--losses", "triplet,contrastive", "--save-embeddings",
                 "--output", str(out), *TINY]) == 0
    for loss in ("triplet", "contrastive"):
        folder = out / loss / "seed0"
        arrays, items = load_embeddings(folder)
        record = json.loads((folder / "result.json").read_text())
        assert (arrays.labels[arrays.neighbors.indices[:, 0]] == arrays.labels).mean() == pytest.approx(
            record["metrics"]["recall@1"])
        assert mpimg.imread(folder / "retrieval.png").shape[0] > 0
