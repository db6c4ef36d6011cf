"""Every encoder family the README names, from a folder laid out as the hub publishes it (tests/families.py: tiny
random XLM-R, DeBERTa-v2, BERT and MPNet encoders with real tokenizers of their kind, no tokenizer.json, .bin weights
for the first two): the pair layout is the tokenizer's own, token types go in only where the model has type
embeddings, pre-training continues the checkpoint's own masked-LM head (its first loss is the family's
...ForMaskedLM loss), .bin weights are converted once, and the whole task-2 pipeline runs from prepare and
pre-training to a submission and a predictor that reproduces the fold's own predictions. Folders that cannot be read
are one line."""
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import families
from esci import EsciError
from esci.blend import run_blend
from esci.config import load_config, member_config
from esci.corpora import corpora
from esci.encoder import check_fits, describe, load_encoder, load_masked_lm, load_tokenizer, main, ready
from esci.features import features_for, join_fields
from esci.predict import export, predict, read_pairs
from esci.prepare import load_examples, load_products, prepare, source_dir, task_rows
from esci.pretrain import PretrainModel, mask_tokens, pretrain
from esci.submission import validate
from esci.train import train_fold

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"xlmr": False, "deberta": False, "bert": True, "mpnet": False}  # the model has type embeddings
SMALL = ["bi_encoders=[]", "n_folds=2", "max_len=48", "pt_max_len=48", "epochs=1", "batch_size=16", "lr=1e-3",
         "head_lr=3e-3", "precision=fp32", "max_train_queries=50", "pt_max_products=150", "eval_batch_size=64",
         "save_every=0"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, sample_dir):
    texts = families.sample_text(sample_dir)
    root = tmp_path_factory.mktemp("families")
    return {f: families.build(f, texts, root / f) for f in families.FAMILIES}


def config(out, sample_dir, folder, *files, extra=()):
    return load_config("configs/cpu.py", *files, overrides=[f"output_dir={out}", f"data_dir={sample_dir}",
                                                            f"model_dir={folder}", *SMALL, *extra])


@pytest.mark.parametrize("family", families.FAMILIES)
@pytest.mark.parametrize("max_len", [20, 64])
def test_pairs_are_the_tokenizers_own_pair_encoding(tmp_path, sample_dir, folders, family, max_len):
    cfg = config(tmp_path, sample_dir, folders[family], extra=[f"max_len={max_len}", "max_chars=100000"])
    prepare(cfg)
    tokenizer = load_tokenizer(cfg.model_dir, cfg.encoders_root)
    ex = load_examples(cfg)
    got = features_for(cfg, tokenizer, ex)
    text = join_fields(load_products(cfg), cfg.fields, f" {tokenizer.sep_token} ").to_pylist()
    rows = np.arange(0, len(ex), 11)
    want = tokenizer(ex["query"].iloc[rows].tolist(), [text[i] for i in ex.pidx.iloc[rows]],
                     truncation="longest_first", max_length=max_len, return_token_type_ids=True)
    batch = got.batch(rows, pad_multiple=8)
    assert ("token_type_ids" in batch) == TYPES[family]
    for j, ids in enumerate(want["input_ids"]):
        n = int(batch["attention_mask"][j].sum())
        assert batch["input_ids"][j, :n].tolist() == ids
        if TYPES[family]:
            assert batch["token_type_ids"][j, :n].tolist() == want["token_type_ids"][j]
    assert (got.lengths == max_len).any()  # truncation was exercised
    if family in ("xlmr", "mpnet"):  # </s></s> between the segments
        sep = tokenizer.sep_token_id
        assert any(ids[i] == ids[i + 1] == sep for ids in want["input_ids"] for i in range(len(ids) - 1))


@pytest.mark.parametrize("family", ["xlmr", "deberta", "bert"])
def test_pretraining_continues_the_checkpoints_own_mlm_head(tmp_path, sample_dir, folders, family):
    from transformers import AutoModelForMaskedLM
    cfg = config(tmp_path, sample_dir, folders[family], "configs/pt.py")
    prepare(cfg)
    tokenizer = load_tokenizer(cfg.model_dir, cfg.encoders_root)
    fit, _, vocabs = corpora(cfg, tokenizer)
    encoder, head, name = load_masked_lm(cfg.model_dir, len(tokenizer), cfg.encoders_root)
    assert name == families.HAS_MLM_HEAD[family]
    model = PretrainModel(encoder, head, cfg, len(vocabs["brand"]), len(vocabs["color"])).eval()
    batch = fit["mlm"].batch(np.arange(8))
    special = torch.isin(batch["input_ids"], torch.tensor(tokenizer.all_special_ids))
    batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], special, tokenizer, 0.15,
                                                      torch.Generator().manual_seed(0))
    # the family's own masked LM, read by transformers from the published folder (.bin included)
    kwargs = {"legacy": False} if family == "deberta" else {}
    reference = AutoModelForMaskedLM.from_pretrained(str(folders[family]), **kwargs).eval()
    with torch.no_grad():
        ours, _ = model("mlm", batch)
        theirs = reference(**batch).loss
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


@pytest.mark.parametrize("family", families.FAMILIES)
def test_a_published_folder_runs_task_2_to_a_submission_and_a_served_model(tmp_path, sample_dir, folders, family,
                                                                          caplog):
    out = tmp_path / "out"
    pt = config(out, sample_dir, folders[family], "configs/pt.py")
    prepare(pt)
    with caplog.at_level("INFO", logger="esci"):
        metrics = pretrain(pt)
    head = families.HAS_MLM_HEAD[family]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("masked-LM head:")]
    assert said == [f"masked-LM head: the checkpoint's own ({head}), continued" if head else
                    "masked-LM head: new (the checkpoint's weights hold none, as in a sentence-transformers folder)"]
    assert {"mlm_loss", "p2q_acc", "brand_acc", "color_acc"} <= set(metrics["start"])
    logged = [json.loads(line) for line in (pt.run_dir / "train_log.jsonl").read_text().splitlines()]
    assert {"mlm", "p2q", "attr", "simcse"} <= {k for row in logged for k in row}  # attr: brand and color
    converted = sorted((out / "encoders").glob(f"{family}_*"))
    assert len(converted) == (1 if family in ("xlmr", "deberta") else 0)

    blend = load_config("configs/cpu.py", "configs/blend_t2.py",
                        overrides=[f"output_dir={out}", f"data_dir={sample_dir}", f"model_dir={folders[family]}",
                                   *SMALL, "init_from=pt", "members=['t2_a']"])
    member = member_config(blend, "t2_a")
    for fold in range(2):
        train_fold(member, fold)
    assert json.loads((member.run_dir / "fold0/fingerprint.json").read_text())["inputs"]["init_from"]
    assert sorted((out / "encoders").glob(f"{family}_*")) == converted  # converted once, read by every later stage
    train, test = task_rows(load_examples(blend), 2)
    run_blend(blend, train, test, [member])
    runpy.run_path(str(ROOT / "src/06_submit.py"))["main"](blend)
    sub = blend.run_root / "submissions/task2.csv"
    assert validate(2, sub, test)["rows"] == len(test)
    store = json.loads(next(member.features_root.glob("tok_*/meta.json")).read_text())
    assert store["use_types"] == TYPES[family]

    served = export(member.run_dir / "fold0", tmp_path / "model")
    fold_test = pd.read_parquet(member.run_dir / "fold0/test.parquet")
    pairs = read_pairs(source_dir(member))
    got = predict(served, pairs[pairs.example_id.isin(fold_test.example_id)]).merge(fold_test, on="example_id")
    assert len(got) == len(fold_test) == len(test)
    for col in ("p_E", "p_S", "p_C", "p_I"):
        np.testing.assert_allclose(got[f"{col}_x"], got[f"{col}_y"], atol=1e-5)


def test_a_bin_folder_is_converted_once_into_safetensors(tmp_path, folders):
    from safetensors import safe_open
    src = folders["xlmr"]
    a = ready(str(src), tmp_path / "enc")
    assert a.parent == tmp_path / "enc" and (a / "model.safetensors").exists() and (a / "tokenizer.json").exists()
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert ready(str(src), tmp_path / "enc") == a and (a / "model.safetensors").stat().st_mtime_ns == stamp
    state = torch.load(src / "pytorch_model.bin", weights_only=True)
    with safe_open(a / "model.safetensors", "pt") as st:
        assert set(st.keys()) == set(state) and all(torch.equal(st.get_tensor(k), state[k]) for k in state)
    texts = ["red running shoes", "zapatos rojos | talla 42", "ヘッドホン 黒"]
    assert load_tokenizer(str(src), tmp_path / "enc")(texts)["input_ids"] == load_tokenizer(str(src))(texts)["input_ids"]
    # weights in shards, with their index: converted shard by shard, the index rewritten, the same model loaded
    sharded = tmp_path / "sharded"
    shutil.copytree(src, sharded)
    (sharded / "pytorch_model.bin").unlink()
    keys = sorted(state)
    shards = {f"pytorch_model-0000{i + 1}-of-00002.bin": keys[i::2] for i in range(2)}
    for name, part in shards.items():
        torch.save({k: state[k] for k in part}, sharded / name)
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, part in shards.items() for k in part}}))
    c = ready(str(sharded), tmp_path / "enc")
    index = json.loads((c / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(index) == set(state) and set(index.values()) == {"model-00001-of-00002.safetensors",
                                                                "model-00002-of-00002.safetensors"}
    one, two = load_encoder(str(src), root=tmp_path / "enc"), load_encoder(str(sharded), root=tmp_path / "enc")
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))
    # other weights at the same path: another folder (the key is the content, not the name)
    copy = tmp_path / "xlmr"
    shutil.copytree(src, copy)
    state["roberta.embeddings.word_embeddings.weight"] += 1
    torch.save(state, copy / "pytorch_model.bin")
    b = ready(str(copy), tmp_path / "enc")
    assert b != a and b.name.startswith("xlmr_")


def _broken(tmp_path, folders, family, name):
    d = tmp_path / name
    shutil.copytree(folders[family], d)
    return d


def test_folders_that_cannot_be_read_are_one_line(tmp_path, sample_dir, folders, monkeypatch, caplog):
    no_tok = _broken(tmp_path, folders, "bert", "no_tokenizer")
    (no_tok / "vocab.txt").unlink()
    with pytest.raises(EsciError, match="no tokenizer file .*fix: download the tokenizer files"):
        load_tokenizer(str(no_tok))
    no_type = _broken(tmp_path, folders, "bert", "no_type")
    raw = json.loads((no_type / "config.json").read_text())
    raw.pop("model_type")
    (no_type / "config.json").write_text(json.dumps(raw))
    with pytest.raises(EsciError, match="config.json: no model_type; fix: add \"model_type\""):
        load_tokenizer(str(no_type))
    # a tokenizer with more ids than the embeddings have rows
    small = _broken(tmp_path, folders, "bert", "small_vocab")
    with open(small / "vocab.txt", "a") as f:
        f.write("".join(f"extra{i}\n" for i in range(50)))
    cfg = load_config("configs/cpu.py", overrides=[f"model_dir={small}"])
    with pytest.raises(EsciError, match="vocab_size 1500 is smaller than the tokenizer's 1550 ids"):
        check_fits(cfg, load_tokenizer(str(small)), "max_len")
    # positions shorter than the run's length (XLM-R's 514 rows hold 512 tokens)
    cfg = load_config("configs/cpu.py", overrides=[f"model_dir={folders['xlmr']}", "max_len=600"])
    with pytest.raises(EsciError, match="holds 512 tokens, max_len=600 needs 600; fix: OVERRIDES=\"max_len=512\""):
        check_fits(cfg, load_tokenizer(str(folders["xlmr"]), tmp_path / "enc"), "max_len")
    # weights under names the model does not have: said in one warning, not left to start random in silence
    from safetensors.torch import load_file, save_file
    renamed = _broken(tmp_path, folders, "bert", "renamed")
    state = load_file(renamed / "model.safetensors")
    save_file({k.replace("bert.encoder.layer.1.", "bert.encoder.block.1."): v for k, v in state.items()},
              renamed / "model.safetensors")
    with caplog.at_level("WARNING", logger="esci"):
        load_encoder(str(renamed))
    warned = [r.getMessage() for r in caplog.records if "not in its checkpoint" in r.getMessage()]
    assert len(warned) == 1 and "16 of the model's weights" in warned[0] and "encoder.layer.1." in warned[0]
    # weights that hold pickled code are refused, not run
    evil = _broken(tmp_path, folders, "xlmr", "evil")
    torch.save({"w": torch.zeros(1), "x": Path("/")}, evil / "pytorch_model.bin")
    with pytest.raises(EsciError, match="pytorch_model.bin: cannot be read as PyTorch weights with weights_only=True"):
        ready(str(evil), tmp_path / "enc")
    assert not list((tmp_path / "enc").glob("evil_*"))  # nothing half-made
    # a SentencePiece-only folder without the packages that read it
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "sentencepiece" else
                        real(name, *a))
    with pytest.raises(EsciError, match="spm.model: a SentencePiece tokenizer, which needs the packages sentencepiece; "
                                        "fix: pip install -r requirements.txt"):
        load_tokenizer(str(folders["deberta"]), tmp_path / "enc2")
    monkeypatch.undo()
    # the same from the command line: one line, exit 2, no traceback
    res = subprocess.run([sys.executable, "-m", "esci.encoder", "check", str(no_type)], capture_output=True,
                         text=True, cwd=ROOT)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    env = {**os.environ, "MODEL_DIR": str(no_tok), "OUTPUT_DIR": str(tmp_path / "o"), "DATA_DIR": str(sample_dir),
           "PYTHON": sys.executable, "OVERRIDES": "n_folds=2 bi_encoders=[]"}
    res = subprocess.run(["bash", str(ROOT / "run_task2.sh")], env=env, capture_output=True, text=True)
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(errors) == 1, res.stderr[-3000:]
    assert f"{no_tok}: no tokenizer file" in errors[0]


def test_check_describes_an_encoder_and_its_cost_on_the_data(tmp_path, sample_dir, folders, capsys):
    main(["check", str(folders["deberta"]), str(sample_dir), "--output-dir", str(tmp_path), "--json",
          str(tmp_path / "check.json")])
    said = capsys.readouterr().out
    assert "MLM head     the checkpoint's own (lm_predictions): pre-training continues it" in said
    assert "unknown      share of tokens read as the unknown token, per locale/field: jp/" in said
    info = json.loads((tmp_path / "check.json").read_text())
    assert info == describe(str(folders["deberta"]), str(sample_dir), tmp_path / "encoders")
    assert info["model_type"] == "deberta-v2" and info["converted"] and info["mlm_head"] == "lm_predictions"
    assert info["tokenizer_ids"] <= info["vocab_size"] and info["max_positions"] is None  # relative positions
    assert not info["token_types"] and info["pair_layout"] == "[CLS] <query> [SEP] <product> [SEP]"
    assert info["fits"].startswith("yes")
    d = info["data"]
    assert d["read"] == d["judgements"] and {"us/query", "jp/title", "es/description"} <= set(d["unk_share"])
    assert d["tokens_per_pair"] > d["tokens_per_pair_at_max_len"] and d["tokens_per_pair_at_max_len"] <= 256
    # the compute plan scales with the encoder: the XLM-R-large shape gives the README's figures
    big = describe(str(folders["mpnet"]))
    assert big["mlm_head"] is None and big["plan_tokens"] == 235
    hours = info["gpu_hours"]["run_task2.sh: 2 shared members x 5 folds"]
    assert 0 < hours["optimized loop"] < hours["plain loop"]
    from esci.encoder import _size, gpu_hours
    from transformers import XLMRobertaConfig
    xlmr_large = _size(XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                        num_attention_heads=16, intermediate_size=4096, max_position_embeddings=514))
    plan = gpu_hours(xlmr_large, 235)
    assert plan["run_task2.sh: 2 shared members x 5 folds"] == {"plain loop": 59.5, "optimized loop": 10.4}
