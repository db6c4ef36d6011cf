"""The stacking stage and its lexical features: out-of-fold for real (a member of pure noise cannot be learned into a
good CV), it uses what an informative member knows, every scored row gets one prediction, and the features are
right on hand-made text and made once."""
import numpy as np
import pandas as pd
import pytest

from esci import LABELS
from esci.blend import run_blend
from esci.config import load_config
from esci.io import read_json, write_parquet
from esci.lexical import FEATURES, compute, lexical_features
from esci.prepare import experiment_rows, load_examples, prepare, task_rows
from esci.provenance import fold_fingerprint, record
from esci.stack import group_features


def member(cfg, name, rows, test, signal, seed):
    """A 4-class member whose probabilities are the truth with weight `signal` mixed with random noise (signal None:
    the same constant probabilities on every row)."""
    rng = np.random.default_rng(seed)
    mcfg = cfg.replace(name=name, head="cls4", task=2)
    for k in range(cfg.n_folds):
        for part, df in (("oof", rows[rows.fold == k]), ("test", test)):
            noise = rng.dirichlet([1, 1, 1, 1], len(df))
            truth = np.eye(4)[df.esci_label.map({lab: i for i, lab in enumerate(LABELS)}).to_numpy()] \
                if "esci_label" in df else noise
            p = np.full_like(noise, 0.25) if signal is None else signal * truth + (1 - signal) * noise
            out = pd.DataFrame(p, columns=["p_E", "p_S", "p_C", "p_I"]).assign(example_id=df.example_id.to_numpy())
            out["score"] = p @ np.array([1.0, 0.1, 0.01, 0.0])
            if part == "oof":  # as a trained fold writes it: a column that is no prediction
                out["fold"] = k
            write_parquet(out, mcfg.run_dir / f"fold{k}" / f"{part}.parquet")
        record(mcfg.run_dir / f"fold{k}", fold_fingerprint(mcfg))
        (mcfg.run_dir / f"fold{k}" / "metrics.json").write_text("{}")
    return mcfg


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_dir):
    params = "stack_params={'num_boost_round': 60, 'min_data_in_leaf': 2, 'num_leaves': 63}"
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path_factory.mktemp('stack')}",
                                                      f"data_dir={sample_dir}", params, "bi_encoders=[]"])
    prepare(cfg)
    return cfg, load_examples(cfg)


@pytest.mark.parametrize("task", [1, 2, 3])
def test_stacking_is_out_of_fold_and_uses_the_informative_member(prepared, task):
    cfg, examples = prepared
    large, large_test = experiment_rows(cfg, examples)
    noise = member(cfg, "noise", large, large_test, 0.0, 1)
    flat = member(cfg, "flat", large, large_test, None, 1)
    good = member(cfg, "good", large, large_test, 0.3, 2)
    train, test = task_rows(examples, task)
    metric = "ndcg" if task == 1 else "micro_f1"

    def stacked(name, members):
        return run_blend(cfg.replace(name=name, task=task, members=[m.name for m in members], stack=True), train,
                         test, members)
    # leaves of 2 rows learn each noise value's label by heart; out of fold that knowledge is worthless, so the
    # noise member's stack does no better than a member with nothing in it (both have the lexical features)
    only_noise, nothing = stacked(f"n{task}", [noise]), stacked(f"f{task}", [flat])
    assert only_noise[metric] < nothing[metric] + 0.03
    both = stacked(f"b{task}", [noise, good])
    cv = pd.read_csv(cfg.run_dir.parent / f"b{task}" / "cv.csv").set_index("member")[metric]
    assert both[metric] == cv["stack"] and both[f"blend_{metric}"] == cv["blend"]
    assert both[metric] > nothing[metric] + 0.005 and both[metric] >= cv["good"] - 0.02
    out = cfg.run_dir.parent / f"b{task}"
    oof, pred = pd.read_parquet(out / "oof.parquet"), pd.read_parquet(out / "test.parquet")
    assert sorted(oof.example_id) == sorted(train.example_id) and sorted(pred.example_id) == sorted(test.example_id)
    assert not oof.isna().any().any() and not pred.isna().any().any()
    assert read_json(out / "blend.json")["stack"]["features"] > len(FEATURES)


def test_lexical_features_on_hand_made_text():
    queries = pd.Series(["red shoes", "nike", ""])
    titles = ["red running shoes nike", "blue hat", "nike air"]
    lengths = {"title": np.array([len(t) for t in titles], np.float32), "description": np.array([0, 5, 0], np.float32),
               "bullets": np.array([3, 0, 0], np.float32), "brand": np.array([4, 0, 4], np.float32),
               "color": np.zeros(3, np.float32)}
    qidx, pidx = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 2, 1])
    f = compute(queries, titles, ["Nike", "", "Nike"], lengths, qidx, pidx)
    assert f["overlap"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert f["brand_in_query"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    assert f["tfidf_char"][0] > f["tfidf_char"][1] and f["tfidf_word"][1] == 0 and f["bm25"][0] > 0 == f["bm25"][1]
    assert f["bm25"][3] > f["bm25"][2]  # "nike" weighs more in the shorter title
    assert f["no_desc"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0] and f["no_color"].tolist() == [1.0] * 5
    assert f["q_words"].tolist() == [2.0, 2.0, 1.0, 1.0, 0.0] and f["t_words"].tolist() == [4.0, 2.0, 4.0, 2.0, 2.0]


def test_tfidf_in_place_equals_sklearns_transformer(monkeypatch):
    """The in-place TF-IDF (chunks of rows, no stacked copy) is sklearn's TfidfTransformer(sublinear_tf=True)."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    from esci import lexical
    monkeypatch.setattr(lexical, "ROWS", 3)  # several chunks, one with an empty text
    queries = ["red shoes", "nike", "", "trail running shoes for men"]
    titles = [f"red running shoes nike size {i}" for i in range(7)] + ["blue hat", "", "nike air max 90 black"]
    for kw in (dict(analyzer="char_wb", ngram_range=(2, 4)), dict(analyzer="word", token_pattern=lexical.WORDS)):
        q, p = lexical._tfidf(queries, titles, **kw)
        vec = lexical._hashing(**kw)
        ref = TfidfTransformer(sublinear_tf=True).fit(sp.vstack([vec.transform(queries), vec.transform(titles)]))
        for got, texts in ((q, queries), (p, titles)):
            np.testing.assert_allclose(got.toarray(), ref.transform(vec.transform(texts)).toarray(), atol=1e-6)


def test_lexical_features_are_made_once_per_data_set(prepared):
    cfg, examples = prepared
    first = lexical_features(cfg)
    assert len(first) == len(pd.read_parquet(cfg.data_root / "examples.parquet")) and list(first) == ["example_id",
                                                                                                        *FEATURES]
    stores = list(cfg.features_root.glob("lexical_*.parquet"))
    assert len(stores) == 1
    stamp = stores[0].stat().st_mtime_ns
    assert lexical_features(cfg.replace(name="other", task=1)).equals(first) and stores[0].stat().st_mtime_ns == stamp


def test_a_damaged_lexical_store_is_made_again(prepared):
    cfg, _ = prepared
    first = lexical_features(cfg)
    store, = cfg.features_root.glob("lexical_*.parquet")
    store.write_bytes(store.read_bytes()[:100])
    assert lexical_features(cfg).equals(first)
    assert pd.read_parquet(store).equals(first)


def test_group_features_rank_and_gaps_within_each_query():
    frame = pd.DataFrame({"score": [0.1, 0.5, 0.3, 2.0, 1.0]})
    g = group_features(frame, np.array([7, 7, 7, 9, 9]), ["score"])
    assert g["group_size"].tolist() == [3, 3, 3, 2, 2]
    assert g["score.rank"].tolist() == [0.0, 1.0, 0.5, 1.0, 0.0]
    assert g["score.to_max"].tolist() == pytest.approx([-0.4, 0.0, -0.2, 0.0, -1.0], abs=1e-6)
    assert g["score.to_mean"].tolist() == pytest.approx([-0.2, 0.2, 0.0, 0.5, -0.5], abs=1e-6)


@pytest.mark.parametrize("task", [1, 2])
def test_bags_average_models_of_moved_seeds(task):
    """stack_params' bags: each fold's prediction is the mean of that many models, the b-th with every seed moved by
    b; one bag is the single model."""
    from esci.stack import fit_predict
    rng = np.random.default_rng(0)
    n = 400
    rows = pd.DataFrame({"example_id": np.arange(n), "query_id": np.arange(n) // 10, "fold": (np.arange(n) // 10) % 2,
                         "esci_label": rng.choice(LABELS, n), "product_locale": "us"})
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=list("abcde"))
    x["a"] += rows.esci_label.map({"E": 2.0, "S": 1.0, "C": 0.5, "I": 0.0})
    params = {"num_boost_round": 20, "min_data_in_leaf": 5, "bagging_seed": 5}

    def run(seed, **more):
        oof, pred = fit_predict(task, rows, x, rows.iloc[:50], x.iloc[:50], {**params, **more}, seed)
        return oof.drop(columns="example_id").to_numpy(), pred.drop(columns="example_id").to_numpy()

    one, two = run(42), run(43, bagging_seed=6)
    bagged = run(42, bags=2)
    assert not np.allclose(one[0], two[0])  # the moved seeds draw other models
    for got, a, b in zip(bagged, one, two):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-9)
