"""Feature stores: pairs assembled from the stores equal the tokenizer's own pair encoding, hashed 3-grams are
every gram of the text, stores are made once per key and reused memory-mapped, and the key follows the content."""
import numpy as np
import pandas as pd
import pytest

from esci import features
from esci.config import load_config
from esci.corpora import corpus_store
from esci.io import read_json
from esci.data import EXAMPLES, PRODUCTS
from esci.features import char_ngram_ids, features_for, join_fields, token_store, unit_store, value_ids
from esci.encoder import load_tokenizer
from esci.prepare import load_examples, load_products, prepare


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("")


def prepared(tmp_path, data_dir, *extra):
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={data_dir}", *extra])
    prepare(cfg)
    return cfg


@pytest.mark.parametrize("max_len", [64, 20])
def test_pairs_equal_the_tokenizers_longest_first_encoding(tmp_path, sample_dir, tokenizer, max_len):
    cfg = prepared(tmp_path, sample_dir, f"max_len={max_len}", "max_chars=100000")
    ex = load_examples(cfg)
    feats = features_for(cfg, tokenizer, ex)
    text = join_fields(load_products(cfg), cfg.fields, f" {tokenizer.sep_token} ").to_pylist()
    rows = np.arange(0, len(ex), 7)
    want = tokenizer(ex["query"].iloc[rows].tolist(), [text[i] for i in ex.pidx.iloc[rows]],
                     truncation="longest_first", max_length=max_len)
    got = feats.batch(rows, pad_multiple=8)
    assert got["input_ids"].shape[1] % 8 == 0
    for j, (ids, types) in enumerate(zip(want["input_ids"], want["token_type_ids"])):
        n = int(got["attention_mask"][j].sum())
        assert got["input_ids"][j, :n].tolist() == ids and got["token_type_ids"][j, :n].tolist() == types
        assert feats.lengths[rows[j]] == n
    assert (feats.lengths == max_len).any()  # truncation was exercised


def test_hashed_ngrams_are_every_char_3gram():
    texts = ["abc", "ab", "", "x", "headphones", "ヘッドホン黒", "é a", "abc"]
    data = np.frombuffer("".join(texts).encode(), np.uint8)
    off = np.r_[0, np.cumsum([len(t.encode()) for t in texts])].astype(np.int64)
    ids, starts = char_ngram_ids(data, off, np.arange(len(texts)), 1 << 20)
    per_row = np.split(ids, starts[1:])
    for t, got in zip(texts, per_row):
        grams = [t] if 0 < len(t) < 3 else [t[i:i + 3] for i in range(len(t) - 2)]
        alone = [char_ngram_ids(np.frombuffer(g.encode(), np.uint8), np.array([0, len(g.encode())]),
                                np.array([0]), 1 << 20)[0][0] for g in grams]
        assert got.tolist() == alone
    assert per_row[0].tolist() == per_row[-1].tolist() and len(per_row[2]) == 0
    assert ((ids >= 1) & (ids <= 1 << 20)).all() and len(set(per_row[4].tolist())) == 8
    # the same id on every machine and run (recorded once); a change of the hash must bump features.VERSION
    assert per_row[0].tolist() == [28885]


def test_value_ids_by_count_then_value():
    values = pd.Series(["Acme", "acme ", "Bolt", "", None, "Zed", "Zed", "ACME", "Yak"])
    ids, vocab = value_ids(values, np.arange(len(values)), 2)
    assert vocab == {"acme": 1, "zed": 2}
    assert ids.tolist() == [1, 1, 0, 0, 0, 2, 2, 1, 0]
    _, counted_once = value_ids(values, np.array([0, 2, 5]), 1)
    assert counted_once == {"acme": 1, "bolt": 2, "zed": 3}


def test_stores_are_made_once_and_reused(tmp_path, sample_dir, tokenizer, monkeypatch):
    calls = []
    real = features._tokenize
    monkeypatch.setattr(features, "_tokenize", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    cfg = prepared(tmp_path, sample_dir)
    first = token_store(cfg, tokenizer)
    for other in (cfg.replace(fold=1), cfg.replace(name="t2_b_like", task=3, lr=1e-5)):
        assert token_store(other, tokenizer).folder == first.folder
    assert len(calls) == 2  # queries and products, once
    assert isinstance(first.p_tokens, np.memmap)
    units = unit_store(cfg)
    assert unit_store(cfg.replace(fields=["brand", "title"])).folder == units.folder
    reordered = token_store(cfg.replace(fields=["brand", "title"]), tokenizer)
    assert reordered.folder != first.folder and len(calls) == 4


@pytest.mark.parametrize("column", ["product_description", "product_brand", "product_title"])
def test_one_changed_product_changes_the_keys(tmp_path, raw, tokenizer, column):
    ex, pr = raw
    folders = []
    for name, value in (("a", None), ("b", "changed text")):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        if value is not None:
            pr.loc[5, column] = value
        ex.to_parquet(data / EXAMPLES, index=False)
        pr.to_parquet(data / PRODUCTS, index=False)
        cfg = prepared(tmp_path / name, data)
        folders.append([store.folder.name for store in (token_store(cfg, tokenizer), unit_store(cfg),
                                                        corpus_store(cfg, tokenizer))])
    assert all(a != b for a, b in zip(*folders))


def test_unit_store_key_covers_the_training_split(tmp_path, raw):
    """The brand/color vocabulary is counted over training judgements: moving a query to the test split is another
    store, though no text changed."""
    ex, pr = raw
    folders = []
    for name in ("a", "b"):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        if name == "b":
            ex.loc[ex.query_id == ex.query_id[ex.split == "train"].iloc[0], "split"] = "test"
        ex.to_parquet(data / EXAMPLES, index=False)
        pr.to_parquet(data / PRODUCTS, index=False)
        folders.append(unit_store(prepared(tmp_path / name, data)).folder.name)
    assert folders[0] != folders[1]


def test_join_fields_keeps_rows_with_every_field_empty():
    df = pd.DataFrame({"a": ["x", None, "", "y", "é"], "b": ["p", None, "q", "", "ü"]})
    assert join_fields(df, ["a", "b"], " | ").to_pylist() == ["x | p", "", "q", "y", "é | ü"]


def test_unknown_tokens_are_counted_and_warned_once(tmp_path, sample_dir, caplog):
    """The packaged English tokenizer has no katakana: the sample's jp text is read as [UNK], us and es are not."""
    tiny = load_tokenizer("tiny")
    with caplog.at_level("WARNING", logger="esci"):
        cfg = prepared(tmp_path, sample_dir, "model_dir=tiny")
        store = token_store(cfg, tiny)
        token_store(cfg.replace(fold=1), tiny)  # reopened: no second warning
    shares = read_json(store.folder / "meta.json")["unk_share"]
    assert shares["jp/product"] > 0.1 and shares["jp/query"] > 0.02
    assert shares["us/product"] == shares["es/product"] == shares["us/query"] == 0
    warned = [r.getMessage() for r in caplog.records if "unknown token" in r.getMessage()]
    assert len(warned) == 1 and "jp product" in warned[0] and "MODEL_DIR" in warned[0]
    assert f"{shares['jp/product']:.1%}" in warned[0] and "us " not in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="esci"):
        token_store(cfg.replace(max_len=48), tiny)  # another store of the same tokenizer and data: told already
        quiet = prepared(tmp_path / "quiet", sample_dir, "model_dir=tiny", "unk_warn=0.0")
        token_store(quiet, tiny)  # warnings off
    assert not [r for r in caplog.records if "unknown token" in r.getMessage()]
