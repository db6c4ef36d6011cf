"""Multi-task pre-training: the corpora are arrays made once per catalog whose rows equal the tokenizer's own
encoding of the same texts, fake queries follow their rules, masking is BERT's, the stage lowers held-out MLM loss on
the tiny encoder, resumes after a kill, and fine-tuning starts from its output unchanged; its optimisation keys are
its own (fine-tuning's never change it) and its loss weights are named."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from esci import EsciError
from esci.config import load_config
from esci.corpora import IGNORE, corpora, corpus_store, fake_queries
from esci.features import join_fields, norm_value
from esci.encoder import load_tokenizer
from esci.prepare import load_products, prepare
from esci.pretrain import mask_tokens, pretrain_fingerprint

ROOT = Path(__file__).resolve().parents[1]
MLM_FIELDS = ["locale", "title", "brand", "color", "bullets", "description"]


def catalog_cfg(tmp_path, sample_dir, *extra):
    cfg = load_config("configs/cpu.py", "configs/pt.py",
                      overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}", "model_dir=tiny", *extra])
    prepare(cfg)
    return cfg


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


def catalog_text(cfg, fields=MLM_FIELDS) -> list[str]:
    products = load_products(cfg).rename(columns={"product_locale": "locale"})
    return join_fields(products, fields, " | ").to_pylist()


def test_fake_queries_are_spans_of_their_text():
    text = "Norvik-compact-over-ear-headphones-R-480-pink" * 3
    means = np.full(2000, 4.0)
    queries = fake_queries(pa.array([text] * 2000), means, np.random.default_rng(0)).to_pylist()
    spans = [q.split(" ") for q in queries]
    assert all(1 <= len(s) <= 2 and all(x and x in text for x in s) for s in spans)
    assert 0.4 < np.mean([len(s) == 2 for s in spans]) < 0.6
    assert 3.6 < np.mean([len(x) for s in spans for x in s]) < 4.4  # truncated Poisson(4) over a long text
    jp = fake_queries(pa.array(["ヘッドホン" * 10] * 500), np.full(500, 8.0), np.random.default_rng(1)).to_pylist()
    assert 7.2 < np.mean([len(x) for q in jp for x in q.split(" ")]) < 8.8
    short = fake_queries(pa.array(["abc", "", "é"] * 100), np.full(300, 8.0), np.random.default_rng(2)).to_pylist()
    assert all(len(x) <= 3 and x in "abc" for q in short[0::3] for x in q.split(" "))
    assert set(short[1::3]) == {""} and set(short[2::3]) <= {"é", "é é"}
    again = fake_queries(pa.array([text] * 2000), means, np.random.default_rng(0)).to_pylist()
    other = fake_queries(pa.array([text] * 2000), means, np.random.default_rng(9)).to_pylist()
    assert again == queries and other != queries


@pytest.mark.parametrize("max_len", [64, 512])
def test_rows_equal_the_tokenizers_encoding(tmp_path, sample_dir, tokenizer, max_len):
    cfg = catalog_cfg(tmp_path, sample_dir, f"pt_max_len={max_len}", "pt_max_products=0", "pt_holdout=0.1")
    fit, _, _ = corpora(cfg, tokenizer)
    text, attr_text = catalog_text(cfg), catalog_text(cfg, ["locale", "title", "bullets", "description"])
    store = corpus_store(cfg, tokenizer)

    def rows(view, idx):
        b = view.batch(idx, pad_multiple=8)
        assert b["input_ids"].shape[1] % 8 == 0
        return [b["input_ids"][j, :int(b["attention_mask"][j].sum())].tolist() for j in range(len(idx))]

    simcse = fit["simcse"]
    idx = np.arange(0, len(simcse), 11)
    want = tokenizer([text[p] for p in simcse.products[idx]], truncation=True, max_length=max_len)["input_ids"]
    assert rows(simcse, idx) == want
    attr = fit["attr"]
    idx = np.arange(0, len(attr), 11)
    got = rows(attr, idx)
    for j, p in enumerate(attr.products[idx]):
        full = tokenizer(attr_text[p], truncation=True, max_length=max_len)["input_ids"]
        # the row without brand and color, cut where the whole row was: a prefix of the tokenizer's encoding
        assert got[j][:-1] == full[:len(got[j]) - 1] and got[j][-1] == tokenizer.sep_token_id
        assert len(got[j]) == len(full) or store.text_len[p] == max_len - 2
    pairs = fit["p2q"]
    idx = np.arange(0, len(pairs), 13)
    queries = store.query_texts(pairs.queries[idx])
    want = tokenizer(queries, [text[p] for p in pairs.products[idx]], truncation="longest_first",
                     max_length=max_len)
    b = pairs.batch(idx)
    for j, (ids, types) in enumerate(zip(want["input_ids"], want["token_type_ids"])):
        n = int(b["attention_mask"][j].sum())
        assert b["input_ids"][j, :n].tolist() == ids and b["token_type_ids"][j, :n].tolist() == types
    # MLM: per locale, the fit products' rows (at most max_len - 2 tokens) joined by [SEP], cut into blocks
    blocks = fit["mlm"]
    order = blocks.order
    locale = store.locale[order]
    ids = tokenizer([text[p] for p in order], add_special_tokens=False, truncation=True,
                    max_length=max_len - 2)["input_ids"]
    want = []
    for value in np.unique(locale):
        stream = [t for i in np.flatnonzero(locale == value) for t in ids[i] + [tokenizer.sep_token_id]]
        want += [[tokenizer.cls_token_id] + stream[s:s + max_len - 2] + [tokenizer.sep_token_id]
                 for s in range(0, len(stream), max_len - 2)]
    assert len(blocks) == len(want) and rows(blocks, np.arange(len(blocks))) == want
    assert (blocks.lengths == [len(w) for w in want]).all() and (pairs.lengths <= max_len).all()
    if max_len == 64:
        assert store.meta["rows_capped"] > 0  # the cap at pt_max_len was exercised


def byte_level_bpe(texts: list[str]):
    """A RoBERTa-style tokenizer (byte-level BPE: a word carries the space before it) trained on `texts`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


def test_pieces_are_checked_against_the_tokenizers_own_encoding(tmp_path, sample_dir, tokenizer, caplog):
    """Pieces tokenized one by one give WordPiece's own ids (no warning); byte-level BPE marks a word by the space
    before it, which a piece's first word lacks: the build says so."""
    cfg = catalog_cfg(tmp_path / "wordpiece", sample_dir, "pt_max_len=512")
    corpus_store(cfg, tokenizer)
    assert "differ from the tokenizer's encoding" not in caplog.text
    store = corpus_store(catalog_cfg(tmp_path / "bpe", sample_dir, "pt_max_len=512"),
                         byte_level_bpe(catalog_text(cfg)))
    assert "differ from the tokenizer's encoding" in caplog.text and len(store) == len(load_products(cfg))


def test_p2q_negatives_never_meet_their_own_product(tmp_path, sample_dir, tokenizer):
    cfg = catalog_cfg(tmp_path, sample_dir, "pt_max_products=0")
    fit, held, _ = corpora(cfg, tokenizer)
    store = corpus_store(cfg, tokenizer)
    for view, own in ((fit["p2q"], fit["simcse"].products), (held["p2q"], held["simcse"].products)):
        q, p, y = view.queries, view.products, view.labels
        assert (q[y == 1] == p[y == 1]).all() and (q[y == 0] != p[y == 0]).all()
        assert (store.locale[q] == store.locale[p]).all()
        assert sorted(p[y == 0]) == sorted(p[y == 1]) == sorted(q[y == 0])  # one of each per product
        assert set(p) <= set(own)  # fit pairs never use held-out products, nor held pairs fit ones
    # the same seed gives the same corpora; another seed other fake queries
    again, _, _ = corpora(catalog_cfg(tmp_path / "again", sample_dir, "pt_max_products=0"), tokenizer)
    assert (again["p2q"].queries == fit["p2q"].queries).all()
    other = corpus_store(catalog_cfg(tmp_path / "seed7", sample_dir, "seed=7"), tokenizer)
    assert other.folder.name != store.folder.name
    assert other.query_texts(range(50)) != store.query_texts(range(50))


def test_brand_color_labels_ignore_rare_and_missing(tmp_path, sample_dir, tokenizer):
    cfg = catalog_cfg(tmp_path, sample_dir, "pt_mlm=False", "pt_p2q=False", "pt_simcse=False", "pt_max_products=0")
    fit, held, vocabs = corpora(cfg, tokenizer)
    assert list(fit) == ["attr"]
    products = load_products(cfg)
    attr = fit["attr"]
    for k, name in enumerate(("brand", "color")):
        value = norm_value(products[name]).to_numpy()
        counts = pd.Series(value[attr.products]).value_counts()
        seen = {v for v, c in counts.items() if v and c >= 2}
        assert set(vocabs[name]) <= seen | set(value[held["attr"].products])
        classes = {c: v for v, c in vocabs[name].items()}
        y = attr.labels[:, k]
        assert all(classes[c] == v for c, v in zip(y[y != IGNORE], value[attr.products][y != IGNORE]))
        assert all(v not in vocabs[name] for v in value[attr.products][y == IGNORE])
    assert ((attr.labels != IGNORE).any(axis=1)).all()
    neither = (products.brand.fillna("") == "") & (products.color.fillna("") == "")
    assert not neither.to_numpy()[attr.products].any() and len(attr) < len(fit["attr"].products) + 1


def test_corpora_are_made_once_for_every_run_and_rank(tmp_path, sample_dir):
    cfg = catalog_cfg(tmp_path, sample_dir)
    code = ("import sys; from esci.log import setup; from esci.config import load_config; "
            "from esci.corpora import corpus_store; from esci.encoder import load_tokenizer; setup('rank'); "
            f"cfg = load_config('configs/cpu.py', 'configs/pt.py', overrides=['output_dir={tmp_path}', "
            f"'data_dir={sample_dir}', 'model_dir=tiny'] + sys.argv[1:]); "
            "print(corpus_store(cfg, load_tokenizer('tiny')).folder)")
    ranks = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    out = [r.communicate() for r in ranks]
    assert all(r.returncode == 0 for r in ranks), out
    built = re.compile(r"pre-training corpora pt_\w+: \d+ products")
    assert out[0][0] == out[1][0] and sum(len(built.findall(e)) for _, e in out) == 1
    # a second run with other pre-training settings reads the same arrays
    second = subprocess.run([sys.executable, "-c", code, "pt_max_products=100", "pt_p2q=False", "pt_lr=1e-3"],
                            cwd=ROOT, capture_output=True, text=True)
    assert second.stdout == out[0][0] and not built.findall(second.stderr)
    assert len(list(cfg.features_root.glob("pt_*"))) == 1


def test_masking_is_berts(tokenizer):
    ids = torch.randint(1000, 2000, (200, 64))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    masked, labels = mask_tokens(ids, special, tokenizer, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != IGNORE
    assert not chosen[:, 0].any() and 0.13 < chosen[:, 1:].float().mean() < 0.17
    assert (labels[chosen] == ids[chosen]).all()
    to_mask = (masked[chosen] == tokenizer.mask_token_id).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.75 < to_mask < 0.85 and 0.07 < kept < 0.14
    assert (masked[~chosen] == ids[~chosen]).all()


def _run(stage, *cfg_args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "src" / stage), "configs/cpu.py", *cfg_args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


PT = ["configs/pt.py", "model_dir=tiny", "pt_max_products=300", "pt_epochs=2", "pt_lr=1e-3", "pt_head_lr=3e-3",
      "pt_holdout=0.1", "save_every=10", "sample_queries=120"]


def test_pretrain_lowers_mlm_loss_resumes_and_seeds_fine_tuning(tmp_path):
    a = [f"output_dir={tmp_path}/a", "data_dir=sample", *PT]
    b = [f"output_dir={tmp_path}/b", "data_dir=sample", *PT]
    killed = _run("02_pretrain.py", *a, env={"ESCI_FAIL_AT_STEP": "20"})
    run = tmp_path / "a/cpu/tiny/pt"
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert (run / "state.pt").exists() and not (run / "encoder").exists()
    resumed = _run("02_pretrain.py", *a)
    assert resumed.returncode == 0 and "resumed at epoch 0, step 20" in resumed.stderr, resumed.stderr[-2000:]
    straight = _run("02_pretrain.py", *b)
    assert straight.returncode == 0, straight.stderr[-2000:]
    ma, mb = (json.loads((tmp_path / d / "cpu/tiny/pt/metrics.json").read_text()) for d in "ab")
    assert ma["best"]["mlm_loss"] < ma["start"]["mlm_loss"] - 0.5
    assert ma["steps"] == mb["steps"] and ma["best"]["mlm_loss"] == pytest.approx(mb["best"]["mlm_loss"], abs=1e-3)
    assert set(ma["rows"]) == {"mlm", "p2q", "attr", "simcse"} and not (run / "state.pt").exists()

    # fine-tuning starts from it by name: the encoder weights and the brand/color rows come from the run
    from safetensors.torch import load_file

    from esci.features import unit_store
    from esci.prepare import prepare
    from esci.train import _setup
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}/a", "data_dir=sample",
                                                      "sample_queries=120", "model_dir=tiny", "init_from=pt",
                                                      "use_ids=True"])
    prepare(cfg)
    model = _setup(cfg, 0).model
    brands = unit_store(cfg).vocab["brand"]
    enc = load_file(run / "encoder/model.safetensors")
    key = next(k for k in enc if "word_embeddings" in k)
    assert torch.equal(model.encoder.state_dict()[key], enc[key])
    saved = torch.load(run / "id_tables.pt")["brand"]
    shared = [v for v in saved["vocab"] if v in brands]
    assert shared
    for v in shared:
        assert torch.equal(model.brand.weight[brands[v]].detach(), saved["weight"][saved["vocab"][v]])


def test_pretraining_keys_are_its_own_and_weights_named(tmp_path, sample_dir, monkeypatch):
    cfg = catalog_cfg(tmp_path, sample_dir)
    fp = pretrain_fingerprint(cfg)
    assert pretrain_fingerprint(cfg.replace(head_lr=0.5, ema=not cfg.ema, max_len=32, grad_accum=4, lr=0.5)) == fp
    for key, value in (("pt_head_lr", 0.5), ("pt_ema", not cfg.pt_ema), ("pt_max_len", 32), ("pt_grad_accum", 4),
                       ("pt_weights", {"p2q": 2.0})):
        assert pretrain_fingerprint(cfg.replace(**{key: value})) != fp, key
    monkeypatch.setattr("esci.pretrain.CORPORA_VERSION", -1)  # corpora that hold something else: another run
    assert pretrain_fingerprint(cfg) != fp
    monkeypatch.undo()
    with pytest.raises(EsciError, match="pt_weights=.*unknown: \\['brnd'\\]"):
        pretrain_fingerprint(cfg.replace(pt_weights={"mlm": 1.0, "brnd": 2.0}))
