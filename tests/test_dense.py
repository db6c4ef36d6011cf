"""Bi-encoder stores: a stored vector is the encoder's mean-pooled embedding of the text as sentence-transformers
computes it (special tokens included, truncated at bi_max_len), an empty text is a zero row whose cosine is NaN, a
store is made once per key and shared by every experiment, and the stack reads the cosines with their rank in the
query."""
import numpy as np
import pandas as pd
import pytest
import torch

from esci import dense
from esci.blend import run_blend
from esci.config import load_config
from esci.encoder import load_encoder, load_tokenizer
from esci.io import read_json
from esci.prepare import experiment_rows, load_examples, load_products, prepare, task_rows
from test_stack import member


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_dir):
    params = "stack_params={'num_boost_round': 30, 'min_data_in_leaf': 2}"
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path_factory.mktemp('dense')}",
                                                      f"data_dir={sample_dir}", "bi_max_len=24", "bi_batch=16",
                                                      params])
    prepare(cfg)
    return cfg


@torch.no_grad()
def reference(texts, max_len):
    """sentence-transformers' recipe, written out: the tokenizer's own encoding, mean over the attention mask."""
    tok, enc = load_tokenizer(""), load_encoder("").eval()
    b = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    h, m = enc(**b).last_hidden_state, b["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()


def test_vectors_are_the_encoders_pooled_embeddings(prepared, monkeypatch):
    cfg = prepared
    monkeypatch.setattr(dense, "CHUNK", 97)  # several chunks, each embedded longest first
    products = load_products(cfg)
    vectors, empty = dense.embeddings(cfg, "", "side")
    assert vectors.shape == (len(products), 384) and vectors.dtype == np.float16 and not empty.any()
    side = products.title + " " + products.brand + " " + products.color + " " + products.bullets
    text = side.str.split().str.join(" ")
    rows = np.arange(0, len(products), 41)
    np.testing.assert_allclose(vectors[rows], reference(text.iloc[rows].tolist(), 24), atol=3e-3)
    lens = np.array([len(ids) for ids in load_tokenizer("")(text.iloc[rows].tolist())["input_ids"]])
    assert (lens > 24).any()  # truncation was exercised

    queries, _ = dense.embeddings(cfg, "", "query")
    ex = load_examples(cfg).drop_duplicates("qidx").sort_values("qidx")
    np.testing.assert_allclose(queries[ex.qidx.to_numpy()[:20]], reference(ex["query"].iloc[:20].tolist(), 24),
                               atol=3e-3)


def test_empty_texts_are_zero_rows_with_nan_cosines(prepared):
    cfg = prepared
    products = load_products(cfg)
    vectors, empty = dense.embeddings(cfg, "", "desc")
    no_desc = (products.description == "").to_numpy()
    assert no_desc.any() and (empty == no_desc).all()
    assert not np.asarray(vectors[no_desc], np.float32).any()
    feats = dense.dense_features(cfg, [""], ["title", "desc"])
    ex = pd.read_parquet(cfg.data_root / "examples.parquet", columns=["example_id", "pidx"])
    assert feats.example_id.tolist() == ex.example_id.tolist()
    assert (feats["minilm.cos_desc"].isna().to_numpy() == no_desc[ex.pidx]).all()
    assert not feats["minilm.cos_title"].isna().any() and feats["minilm.cos_title"].between(-1.01, 1.01).all()


def test_stores_are_made_once_per_key(prepared, monkeypatch):
    cfg = prepared
    calls = []
    real = dense._embed
    monkeypatch.setattr(dense, "_embed", lambda *a: calls.append(a[3]) or real(*a))
    first = dense.dense_features(cfg.replace(bi_encoders=["tiny"], bi_fields=["title"]))
    again = dense.dense_features(cfg.replace(bi_encoders=["tiny"], bi_fields=["title"], name="t2_b", fold=1))
    assert calls == ["query", "title"] and first.equals(again)
    dense.dense_features(cfg.replace(bi_encoders=["tiny"], bi_fields=["title"], bi_max_len=16))
    assert calls == ["query", "title"] * 2


def test_unknown_text_is_one_line(prepared):
    from esci import EsciError
    with pytest.raises(EsciError, match="bi_fields: unknown text \\['body'\\]"):
        dense.dense_features(prepared.replace(bi_encoders=[""], bi_fields=["body"]))


def test_the_stack_reads_the_cosines(prepared):
    cfg = prepared
    examples = load_examples(cfg)
    large, large_test = experiment_rows(cfg, examples)
    flat = member(cfg, "flat", large, large_test, None, 1)
    train, test = task_rows(examples, 1)
    runs = {}
    for name, encoders in (("lex", []), ("bi", [""])):
        run_blend(cfg.replace(name=name, task=1, members=["flat"], stack=True, bi_encoders=encoders,
                              bi_fields=["title"]), train, test, [flat])
        runs[name] = read_json(cfg.run_dir.parent / name / "blend.json")
    # the cosine, its rank in the query and its gaps to the query's max and mean
    assert runs["bi"]["stack"]["features"] == runs["lex"]["stack"]["features"] + 4
    # a member with nothing in it: the bi-encoder's cosine is what the stack learns over the lexical features
    assert runs["bi"]["ndcg"] > runs["lex"]["ndcg"]


def test_bi_encoder_keys_leave_trained_folds_valid(prepared):
    """They change what the stack reads, not what a fold-training makes: its fingerprint stays."""
    from esci.provenance import fold_fingerprint
    cfg = prepared.replace(name="t2_a")
    assert fold_fingerprint(cfg) == fold_fingerprint(cfg.replace(bi_encoders=[""], bi_fields=["desc"], bi_max_len=64))
    assert fold_fingerprint(cfg) != fold_fingerprint(cfg.replace(lr=1e-5))


def test_a_text_is_its_filled_fields(tmp_path, raw, monkeypatch):
    """A catalog of titles only: side and title + description are the title's text and read its store, the
    description is left out of the features, and asking for its vectors is one line."""
    from esci import EsciError
    from esci.data import EXAMPLES, PRODUCTS
    ex, pr = raw
    pr[["product_brand", "product_color", "product_bullet_point", "product_description"]] = None
    data = tmp_path / "data"
    data.mkdir()
    ex.to_parquet(data / EXAMPLES, index=False)
    pr.to_parquet(data / PRODUCTS, index=False)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path / 'out'}", f"data_dir={data}",
                                                      "bi_max_len=16", "bi_encoders=['tiny']"])
    prepare(cfg)
    assert dense.text_fields(cfg, "side") == dense.text_fields(cfg, "title_desc") == ("title", ["title"])
    calls = []
    real = dense._embed
    monkeypatch.setattr(dense, "_embed", lambda *a: calls.append(a[3]) or real(*a))
    feats = dense.dense_features(cfg, fields=["title", "side", "desc"])
    assert list(feats.columns) == ["example_id", "tiny.cos_title"] and calls == ["query", "title"]
    alone = dense.dense_features(cfg, fields=["title_desc"])
    assert calls == ["query", "title"] and np.array_equal(alone["tiny.cos_title_desc"], feats["tiny.cos_title"])
    with pytest.raises(EsciError, match="no product has any of \\['description'\\]; fix: leave 'desc' out"):
        dense.embeddings(cfg, "tiny", "desc")
