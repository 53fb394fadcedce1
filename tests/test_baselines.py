"""Baselines on the real TREC task: the test split's majority class (DESC, 138 of 500 test questions) next to the
training split's (ENTY), and TF-IDF + logistic regression well above both; the CLI writes them to a JSON file."""

from __future__ import annotations

import json

import pytest

from recipes.evaluation.baselines import C_GRID, main, majority_class


def test_majority_class_of_the_fit_labels_scored_on_the_test_labels():
    names = ["a", "b", "c"]
    # fit majority 'b'; on [0, 1, 1, 2] it is right twice: accuracy 0.5, macro-F1 over {0, 1, 2} = (0 + 2/3 + 0) / 3
    scores = majority_class([1, 1, 0], [0, 1, 1, 2], names)
    assert scores == pytest.approx({"label": "b", "accuracy": 0.5, "macro_f1": 2 / 9, "one_class": True})
    assert majority_class([2, 0], [0], names)["label"] == "a"  # a tie goes to the lowest id


@pytest.fixture(scope="module")
def trec_results(tmp_path_factory):
    output = tmp_path_factory.mktemp("baselines") / "baselines.json"
    returned = main(["--tasks", "trec", "--output", str(output)])
    return returned, json.loads(output.read_text())


def test_trec_baselines(trec_results):
    returned, written = trec_results
    assert written == json.loads(json.dumps(returned))
    trec = written["tasks"]["trec"]
    assert trec["rows"]["test"] == 500
    assert trec["majority_class_test"]["label"] == "DESC"
    assert trec["majority_class_test"]["accuracy"] == pytest.approx(138 / 500)
    assert trec["majority_class_train"]["label"] == "ENTY"
    assert trec["majority_class_train"]["accuracy"] < trec["majority_class_test"]["accuracy"]
    model = trec["tfidf_logistic_regression"]
    assert model["C"] in C_GRID and set(map(float, model["validation_macro_f1"])) == set(C_GRID)
    assert not model["one_class"]
    assert model["accuracy"] > trec["majority_class_test"]["accuracy"] + 0.3
    assert model["macro_f1"] > trec["majority_class_test"]["macro_f1"] + 0.3


def test_an_unknown_task_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="Unknown task 'no-such-task'"):
        main(["--tasks", "trec", "no-such-task", "--output", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()
