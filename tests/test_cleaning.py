"""Confident learning on hand-made OOF probabilities: the rows whose given label the model contradicts most
confidently are the ones removed, in that order, and only a classifier's probabilities are accepted."""
import numpy as np
import pandas as pd
import pytest

from esci import EsciError
from esci.cleaning import label_issues


def test_the_confidently_contradicted_rows_are_found_first():
    rng = np.random.default_rng(0)
    n = 200
    truth = rng.choice(list("ESCI"), n, p=[0.55, 0.25, 0.1, 0.1])
    probs = np.full((n, 4), 0.02)
    probs[np.arange(n), ["ESCI".index(t) for t in truth]] = 0.94
    given = truth.copy()
    flipped = np.array([3, 50, 77, 120, 199])
    given[flipped] = np.where(truth[flipped] == "E", "I", "E")
    probs[flipped[:2]] = np.where(probs[flipped[:2]] > 0.5, 0.99, 0.0033)  # the two most confident contradictions
    train = pd.DataFrame({"example_id": np.arange(n) + 1000, "esci_label": given})
    oof = pd.DataFrame(probs, columns=["p_E", "p_S", "p_C", "p_I"]).assign(example_id=np.arange(n) + 1000)
    issues, found = label_issues(train, oof, "cls4", 5 / n)
    assert found >= 5 and sorted(issues.example_id - 1000) == sorted(flipped)
    assert set(issues.example_id[:2] - 1000) == set(flipped[:2]) and issues["rank"].tolist() == list(range(5))
    assert (issues.suspected_label.to_numpy() == truth[issues.example_id - 1000]).all()
    fewer, _ = label_issues(train, oof, "cls4", 2 / n)
    assert fewer.example_id.tolist() == issues.example_id[:2].tolist()
    with pytest.raises(EsciError, match="cls4 or cls2"):
        label_issues(train, oof.assign(score=0.5), "reg", 0.1)
