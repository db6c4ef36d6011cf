import math

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
from sklearn.metrics import ndcg_score

from esci import GAINS
from esci.metrics import micro_f1, ndcg, ndcg_per_query, ndcg_report


def frame(labels, scores, qid=0):
    return pd.DataFrame({"query_id": qid, "esci_label": list(labels), "score": scores})


def test_hand_computed_cases():
    # E ranked second behind S: DCG = 0.1/log2(2) + 1/log2(3); IDCG = 1 + 0.1/log2(3)
    got = ndcg(frame("SE", [2.0, 1.0]))
    assert got == pytest.approx((0.1 + 1 / math.log2(3)) / (1 + 0.1 / math.log2(3)))
    assert ndcg(frame("ESCI", [4, 3, 2, 1])) == pytest.approx(1.0)
    # C above S: gains 1, .01, .1
    want = (1 + 0.01 / math.log2(3) + 0.1 / 2) / (1 + 0.1 / math.log2(3) + 0.01 / 2)
    assert ndcg(frame("ECS", [3, 2, 1])) == pytest.approx(want)


def test_ties_take_the_expected_order():
    # E and I tied at the top: each position gets the mean gain 0.5
    want = (0.5 + 0.5 / math.log2(3)) / 1.0
    assert ndcg(frame("EI", [1.0, 1.0])) == pytest.approx(want)
    assert ndcg(frame("IE", [1.0, 1.0])) == pytest.approx(want)


def test_all_irrelevant_query_scores_zero_and_counts_in_mean():
    df = pd.concat([frame("II", [1, 2], qid=1), frame("EI", [2, 1], qid=2)])
    per_q = ndcg_per_query(df)
    assert per_q.loc[1] == 0.0 and per_q.loc[2] == 1.0
    assert ndcg(df) == pytest.approx(0.5)


def test_official_mode_swaps_s_and_c():
    df = frame("CS", [2, 1])
    assert ndcg(df) < 1.0 and ndcg(df, official=True) == pytest.approx(1.0)


def random_queries(rng, n_q=40, ties=False):
    rows = []
    for q in range(n_q):
        n = int(rng.integers(2, 30))
        labels = rng.choice(list("ESCI"), n, p=[0.6, 0.2, 0.05, 0.15])
        scores = rng.integers(0, 4, n).astype(float) if ties else rng.random(n)
        rows.append(pd.DataFrame({"query_id": q, "product_id": [f"p{i}" for i in range(n)],
                                  "esci_label": labels, "score": scores}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn(ties):
    df = random_queries(np.random.default_rng(0), ties=ties)
    per_q = ndcg_per_query(df)
    for q, g in df.groupby("query_id"):
        gains = g.esci_label.map(GAINS).to_numpy()[None]
        want = ndcg_score(gains, g.score.to_numpy()[None]) if gains.max() > 0 else 0.0
        assert per_q.loc[q] == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("official", [False, True])
def test_matches_pytrec_eval(official):
    df = random_queries(np.random.default_rng(1))
    gains = {"E": 100, "S": 1 if official else 10, "C": 10 if official else 1, "I": 0}
    qrel = {str(q): {p: gains[l] for p, l in zip(g.product_id, g.esci_label)} for q, g in df.groupby("query_id")}
    run = {str(q): dict(zip(g.product_id, g.score)) for q, g in df.groupby("query_id")}
    res = pytrec_eval.RelevanceEvaluator(qrel, {"ndcg"}).evaluate(run)
    per_q = ndcg_per_query(df, official=official)
    for q, v in res.items():
        assert per_q.loc[int(q)] == pytest.approx(v["ndcg"], abs=1e-9)


def test_report_has_locales():
    df = random_queries(np.random.default_rng(2), n_q=12)
    df["product_locale"] = np.where(df.query_id % 3 == 0, "jp", "us")
    rep = ndcg_report(df)
    assert set(rep) == {"ndcg", "ndcg_official", "ndcg_jp", "ndcg_us"}
    assert min(rep["ndcg_jp"], rep["ndcg_us"]) <= rep["ndcg"] <= max(rep["ndcg_jp"], rep["ndcg_us"])


def test_micro_f1():
    assert micro_f1(list("ESCI"), list("ESII")) == 0.75
    with pytest.raises(ValueError):
        micro_f1([], [])
    assert ndcg(frame("I", [1.0])) == 0.0


def test_release_sized_query_table_in_one_pass():
    """The vectorized nDCG agrees with a per-query computation on many small queries with ties."""
    rng = np.random.default_rng(3)
    n = 20000
    df = pd.DataFrame({"query_id": rng.integers(0, 3000, n), "esci_label": rng.choice(list("ESCI"), n),
                       "score": rng.integers(0, 5, n).astype(float)})
    per_q = ndcg_per_query(df)
    for q in rng.choice(per_q.index, 50, replace=False):
        one = df[df.query_id == q]
        assert per_q.loc[q] == pytest.approx(ndcg_per_query(one.assign(query_id=0)).iloc[0], abs=1e-12)
        want = ndcg_score([one.esci_label.map(GAINS)], [one.score]) if len(one) > 1 else None
        if want is not None and one.esci_label.map(GAINS).sum() > 0:
            assert per_q.loc[q] == pytest.approx(want, abs=1e-9)


def test_reliability_bins_and_ece():
    from esci.explore import reliability
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    right = np.array([1, 1, 1, 0, 1, 0], bool)
    table, ece = reliability(conf, right, bins=10)
    assert table.bin.tolist() == [5, 9] and table.rows.tolist() == [2, 4]
    assert table.accuracy.tolist() == [0.5, 0.75]
    assert ece == pytest.approx((2 * 0.05 + 4 * 0.2) / 6)


def test_per_query_figures_of_each_task():
    from esci.explore import per_query
    df = pd.DataFrame({"query_id": [1, 1, 2, 2], "esci_label": ["E", "I", "S", "E"],
                       "p_E": [0.9, 0.1, 0.8, 0.3], "p_S": [0.05, 0.1, 0.7, 0.6],
                       "p_C": [0.03, 0.1, 0.05, 0.05], "p_I": [0.02, 0.7, 0.05, 0.05]})
    # task 2 ranks by expected gain: query 2 puts its S row (gain 0.1) above its E row
    expected = (0.1 + 1 / np.log2(3)) / (1 + 0.1 / np.log2(3))
    assert per_query(2, df).to_dict() == pytest.approx({1: 1.0, 2: expected})
    # task 3 at threshold 0.5 on p_S: query 2 calls its E row a substitute
    assert per_query(3, df, 0.5).to_dict() == {1: 1.0, 2: 0.5}
