"""Multi-task pre-training: corpus builders follow their label rules, masking is BERT's, the stage lowers
held-out MLM loss on the tiny encoder, resumes after a kill, and fine-tuning starts from its output unchanged;
its optimisation keys are its own (fine-tuning's never change it) and its loss weights are named."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from esci import EsciError
from esci.config import load_config
from esci.model import load_tokenizer
from esci.pretrain import (IGNORE, attr_labels, attr_vocab, build_corpora, fake_query, load_catalog, mask_tokens,
                           mlm_blocks, p2q_pairs, pretrain_fingerprint)

ROOT = Path(__file__).resolve().parents[1]


def catalog_cfg(tmp_path, sample_dir, *extra):
    return load_config("configs/sample.py", "configs/pt.py",
                       overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}", "model_dir=tiny", *extra])


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


def test_fake_queries_are_spans_of_their_text():
    rng = np.random.default_rng(0)
    text = "Norvik compact over-ear headphones R-480 - pink " * 3
    lengths = []
    for _ in range(2000):
        spans = fake_query(text, 4.0, rng)
        assert 1 <= len(spans) <= 2 and all(s and s in text for s in spans)
        lengths += [len(s) for s in spans]
    assert 3.6 < np.mean(lengths) < 4.4  # truncated Poisson(4) over a long text
    jp = [len(s) for _ in range(500) for s in fake_query("ヘッドホン" * 10, 8.0, rng)]
    assert 7.2 < np.mean(jp) < 8.8
    assert all(len(s) <= 3 for _ in range(200) for s in fake_query("abc", 8.0, rng))
    assert fake_query("", 4.0, rng) == []


def test_p2q_negatives_never_meet_their_own_product(tmp_path, sample_dir):
    df = load_catalog(catalog_cfg(tmp_path, sample_dir, "pt_max_products=400"))
    pairs = p2q_pairs(df, {"us": 4.0, "es": 4.0, "jp": 8.0}, np.random.default_rng(1))
    pos, neg = pairs[pairs.label == 1], pairs[pairs.label == 0]
    assert (pos["product"] == pos.query_source).all() and (neg["product"] != neg.query_source).all()
    assert (df.locale.to_numpy()[neg["product"]] == df.locale.to_numpy()[neg.query_source]).all()
    assert sorted(neg["product"]) == sorted(pos["product"]) == sorted(neg.query_source)  # one of each per product
    source = (df.title + " " + df.brand + " " + df.color).str.strip().to_numpy()
    assert all(sp and all(x in source[i] for x in sp) for sp, i in zip(pos.spans, pos["product"]))
    assert (neg.spans.str.join(" ") == neg["query"]).all()


def test_brand_color_labels_ignore_rare_and_missing(tmp_path, sample_dir, tokenizer):
    values = pd.Series(["Acme", "acme ", "Bolt", "", "Zed", "Zed", "ACME"])
    vocab = attr_vocab(values)
    assert vocab == {"acme": 0, "zed": 1}  # bolt seen once, "" missing
    assert attr_labels(values, vocab).tolist() == [0, 0, IGNORE, IGNORE, 1, 1, 0]
    df = pd.DataFrame({"locale": "us", "title": ["a", "b", "c", "d"], "brand": ["X", "X", "Y", ""],
                       "color": ["red", "", "red", ""], "bullets": "", "description": ""})
    cfg = catalog_cfg(tmp_path, sample_dir, "pt_mlm=False", "pt_p2q=False", "pt_simcse=False")
    c = build_corpora(df, tokenizer, cfg, np.random.default_rng(0),
                      {"brand": attr_vocab(df.brand), "color": attr_vocab(df.color)})
    # row d has neither label and is dropped; Y is seen once
    assert c["attr"].labels.tolist() == [[0, 0], [0, IGNORE], [IGNORE, 0]] and list(c) == ["attr"]


def test_mlm_blocks_and_masking(tokenizer):
    texts = ["us | red kettle | Acme"] * 30 + ["jp | ケトル | 赤"] * 30
    c = mlm_blocks(texts, ["us"] * 30 + ["jp"] * 30, tokenizer, 32)
    per_text = len(tokenizer(texts[0], add_special_tokens=False)["input_ids"]) + 1
    assert all(len(b) <= 32 and b[0] == tokenizer.cls_token_id and b[-1] == tokenizer.sep_token_id for b in c.input_ids)
    jp_tokens = len(tokenizer(texts[-1], add_special_tokens=False)["input_ids"]) + 1
    assert sum(len(b) - 2 for b in c.input_ids) == 30 * per_text + 30 * jp_tokens
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
    return subprocess.run([sys.executable, str(ROOT / "src" / stage), "configs/sample.py", *cfg_args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


PT = ["configs/pt.py", "model_dir=tiny", "pt_max_products=300", "pt_epochs=2", "pt_lr=1e-3", "pt_head_lr=3e-3",
      "pt_holdout=0.1", "save_every=10", "sample_queries=120"]


def test_pretrain_lowers_mlm_loss_resumes_and_seeds_fine_tuning(tmp_path):
    a = [f"output_dir={tmp_path}/a", "data_dir=sample", *PT]
    b = [f"output_dir={tmp_path}/b", "data_dir=sample", *PT]
    killed = _run("02_pretrain.py", *a, env={"ESCI_FAIL_AT_STEP": "20"})
    run = tmp_path / "a/sample/tiny/pt"
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert (run / "state.pt").exists() and not (run / "encoder").exists()
    resumed = _run("02_pretrain.py", *a)
    assert resumed.returncode == 0 and "resumed at epoch 0, step 20" in resumed.stderr, resumed.stderr[-2000:]
    straight = _run("02_pretrain.py", *b)
    assert straight.returncode == 0, straight.stderr[-2000:]
    ma, mb = (json.loads((tmp_path / d / "sample/tiny/pt/metrics.json").read_text()) for d in "ab")
    assert ma["best"]["mlm_loss"] < ma["start"]["mlm_loss"] - 0.5
    assert ma["steps"] == mb["steps"] and ma["best"]["mlm_loss"] == pytest.approx(mb["best"]["mlm_loss"], abs=1e-3)
    assert set(ma["rows"]) == {"mlm", "p2q", "attr", "simcse"} and not (run / "state.pt").exists()

    # fine-tuning starts from it by name: the encoder weights and the brand/color rows come from the run
    from safetensors.torch import load_file

    from esci.features import unit_store
    from esci.prepare import prepare
    from esci.train import _setup
    cfg = load_config("configs/sample.py", overrides=[f"output_dir={tmp_path}/a", "data_dir=sample",
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


def test_pretraining_keys_are_its_own_and_weights_named(tmp_path, sample_dir):
    cfg = catalog_cfg(tmp_path, sample_dir)
    fp = pretrain_fingerprint(cfg)
    assert pretrain_fingerprint(cfg.replace(head_lr=0.5, ema=not cfg.ema, max_len=32, grad_accum=4, lr=0.5)) == fp
    for key, value in (("pt_head_lr", 0.5), ("pt_ema", not cfg.pt_ema), ("pt_max_len", 32), ("pt_grad_accum", 4),
                       ("pt_weights", {"p2q": 2.0})):
        assert pretrain_fingerprint(cfg.replace(**{key: value})) != fp, key
    with pytest.raises(EsciError, match="pt_weights=.*unknown: \\['brnd'\\]"):
        pretrain_fingerprint(cfg.replace(pt_weights={"mlm": 1.0, "brnd": 2.0}))
