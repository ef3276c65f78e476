"""Validation classes are carved from the training classes: disjoint from the classes trained on
and from the test classes, for every loader with enough training classes; K folds partition."""

from __future__ import annotations

import pytest
from test_data import _make_cars, _make_cub, _make_sop, _raw_ids

from losszoo.data.splits import validation_classes
from losszoo.training.config import build_config
from losszoo.training.plan import build_model, final_test_data, plan_run, train_dataset, validation_data

MAKERS = {"cub200": _make_cub, "cars196": _make_cars, "sop": _make_sop, "omniglot": None}


@pytest.mark.parametrize("dataset", sorted(MAKERS))
def test_validation_disjoint_from_training_and_test(dataset, tmp_path):
    root = None
    if MAKERS[dataset] is not None:
        MAKERS[dataset](tmp_path)
        root = str(tmp_path)
    settings = dict(dataset=dataset, data_root=root, backbone="convnet4", dim=8, pretrained=False,
                    ks=(1,), binary=False, protocol="holdout", val_fraction=0.6, batch_size=1, sampler="random",
                    samples_per_class=1, max_classes=12 if dataset == "omniglot" else None)
    # The fixtures leave one tiny training class: random batches of 1 are all it can draw.
    plan = plan_run(build_config(settings))
    model = build_model(plan)
    trained, validation = train_dataset(plan, model), validation_data(plan, model).query
    test = final_test_data(plan, model).query
    train_ids, val_ids, test_ids = _raw_ids(trained), _raw_ids(validation), _raw_ids(test)
    assert val_ids and train_ids and not (val_ids & train_ids) and not (val_ids & test_ids)
    assert len(val_ids) == len(plan.validation_classes)
    assert len(train_ids | val_ids) == plan.splits["train"].num_classes


@pytest.mark.parametrize("classes,folds", [(964, 4), (10, 3), (7, 7)])
def test_k_folds_partition_the_training_classes(classes, folds):
    parts = [set(validation_classes(classes, folds=folds, fold=f, seed=3)) for f in range(folds)]
    assert set().union(*parts) == set(range(classes))
    assert sum(len(p) for p in parts) == classes  # pairwise disjoint
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
