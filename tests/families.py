"""Tiny random encoders of every family the README names, each with a real tokenizer of its kind trained in-process
on the sample's text and saved in the layout the hub publishes it in:
  xlmr     XLM-R / InfoXLM: sentencepiece.bpe.model (a SentencePiece BPE model, fairseq's id offset), no
           tokenizer.json, pytorch_model.bin of XLMRobertaForMaskedLM (roberta.* and lm_head.*)
  deberta  mDeBERTa-v3: spm.model ([PAD] [CLS] [SEP] [UNK] as its first pieces), tokenizer_config.json, no
           tokenizer.json, pytorch_model.bin with deberta.* and lm_predictions.*, a config that does not say legacy
  bert     BERT: vocab.txt (WordPiece), no tokenizer.json, model.safetensors of BertForMaskedLM (bert.*, cls.*)
  mpnet    MPNet as sentence-transformers publish it (all-mpnet-base-v2): vocab.txt with <s> <pad> </s> <unk>
           first, model.safetensors of the bare MPNetModel (no masked-LM head)
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

FAMILIES = ("xlmr", "deberta", "bert", "mpnet")
HAS_MLM_HEAD = {"xlmr": "lm_head", "deberta": "lm_predictions", "bert": "cls", "mpnet": None}
SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def sample_text(sample_dir: Path) -> list[str]:
    """Queries and product texts of every locale of the sample (the tokenizers' training text)."""
    examples = pd.read_parquet(sample_dir / "shopping_queries_dataset_examples.parquet", columns=["query"])
    products = pd.read_parquet(sample_dir / "shopping_queries_dataset_products.parquet")
    cols = ["product_title", "product_brand", "product_color", "product_bullet_point", "product_description"]
    texts = examples["query"].drop_duplicates().tolist()
    for c in cols:
        texts += products[c].dropna().astype(str).tolist()
    return [t for t in texts if t.strip()]


def _sentencepiece(texts: list[str], dest: Path, model_type: str, **ids) -> None:
    import sentencepiece as spm
    corpus = dest.with_suffix(".txt")
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(dest.with_suffix("")), vocab_size=1500,
                                   hard_vocab_limit=False, model_type=model_type, character_coverage=0.9995,
                                   minloglevel=2, num_threads=1, **ids)
    corpus.unlink()
    dest.with_suffix(".vocab").unlink()


def _wordpiece(texts: list[str], dest: Path, specials: list[str]) -> None:
    from tokenizers import BertWordPieceTokenizer
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=1500, special_tokens=specials, show_progress=False)
    dest.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(dest))


def _bin(model: torch.nn.Module, dest: Path) -> None:
    model.config.save_pretrained(dest)
    torch.save(model.state_dict(), dest / "pytorch_model.bin")


def build(family: str, texts: list[str], dest: Path) -> Path:
    """A tiny random encoder of `family` with its tokenizer, in the published layout, at dest."""
    from transformers import (BertConfig, BertForMaskedLM, DebertaV2Config, DebertaV2ForMaskedLM,
                              MPNetConfig, MPNetModel, XLMRobertaConfig, XLMRobertaForMaskedLM)
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if family == "xlmr":
        _sentencepiece(texts, dest / "sentencepiece.bpe.model", "bpe")  # <unk> <s> </s> first, as XLM-R's
        n = len(_tokenizer(dest, "xlm-roberta"))
        _bin(XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=n, max_position_embeddings=514, type_vocab_size=1,
                                                    pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                                    architectures=["XLMRobertaForMaskedLM"], **SHAPE)), dest)
    elif family == "deberta":
        _sentencepiece(texts, dest / "spm.model", "unigram", pad_id=0, bos_id=1, eos_id=2, unk_id=3,
                       pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]")
        (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
        n = len(_tokenizer(dest, "deberta-v2"))
        config = DebertaV2Config(vocab_size=n, max_position_embeddings=512, relative_attention=True,
                                 position_buckets=256, norm_rel_ebd="layer_norm", pos_att_type=["p2c", "c2p"],
                                 position_biased_input=False, type_vocab_size=0, legacy=False,
                                 architectures=["DebertaV2ForMaskedLM"], **SHAPE)
        _bin(DebertaV2ForMaskedLM(config), dest)
        raw = json.loads((dest / "config.json").read_text())
        raw.pop("legacy")  # as published: the config does not say which head the weights hold
        (dest / "config.json").write_text(json.dumps(raw, indent=2))
    elif family == "bert":
        _wordpiece(texts, dest, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class":
                                                                "BertTokenizer"}))
        n = len(_tokenizer(dest, "bert"))
        BertForMaskedLM(BertConfig(vocab_size=n, max_position_embeddings=512, architectures=["BertForMaskedLM"],
                                   **SHAPE)).save_pretrained(dest)
    elif family == "mpnet":
        _wordpiece(texts, dest, ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"])
        (dest / "tokenizer_config.json").write_text(json.dumps({
            "do_lower_case": True, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
            "unk_token": "[UNK]", "pad_token": "<pad>", "mask_token": "<mask>", "tokenizer_class": "MPNetTokenizer"}))
        n = len(_tokenizer(dest, "mpnet"))
        MPNetModel(MPNetConfig(vocab_size=n, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                               eos_token_id=2, architectures=["MPNetForMaskedLM"], **SHAPE),
                   add_pooling_layer=False).save_pretrained(dest)
    else:
        raise ValueError(family)
    assert not (dest / "tokenizer.json").exists()
    return dest


def _tokenizer(dest: Path, model_type: str):
    """The folder's tokenizer before its config.json is written (transformers picks the class from the config)."""
    from transformers import AutoTokenizer
    (dest / "config.json").write_text(json.dumps({"model_type": model_type}))
    try:
        return AutoTokenizer.from_pretrained(str(dest))
    finally:
        (dest / "config.json").unlink()
