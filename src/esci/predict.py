"""A trained model as a self-contained folder, and predictions for new (query, product) pairs from it.

Export: `python -m esci.predict export FOLD_DIR OUT_DIR` (FOLD_DIR: a finished fold, or the full fit, of an
experiment: output/<profile>/<encoder>/<exp>/fold<k>/) writes OUT_DIR with
  encoder/          the encoder (save_pretrained: config, safetensors) and its tokenizer
  head.safetensors  everything else of the model: 3-gram bag, locale/brand/color embeddings, head
  config.json       the experiment's resolved config
  vocab.json        the brand and color values with their ids
Predict: `python -m esci.predict --model OUT_DIR --input pairs.parquet --output scores.parquet`, where the input
is a parquet file of pairs (query, product_locale, and any of title, brand, color, bullets, description; missing
fields count as empty; example_id kept when present) or a folder of ESCI files (every example joined with its
product). Product text is cleaned as the prepare stage cleans it. Out: example_id (or the row number), and by
head: p_E p_S p_C p_I, score (expected gain) and p_sub (the substitute probability: task 3) | p_sub | score.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from . import EsciError
from .config import Config
from .data import EXAMPLES, TEXT_FIELDS, clean_text, load_esci
from .encoder import load_encoder, load_tokenizer, takes_types
from .features import memory_features
from .io import atomic_path, load_torch, read_json, write_json, write_parquet
from .model import CrossEncoder
from .tasks import outputs_frame, sub_prob


def export(fold_dir: Path, out: Path) -> Path:
    fold_dir = Path(fold_dir)
    if not (fold_dir / "metrics.json").exists():
        raise EsciError(f"{fold_dir}: not a finished fold (no metrics.json); fix: give a fold<k> or full folder of "
                        f"a trained experiment")
    cfg = Config(read_json(fold_dir / "config.json"))
    stores = read_json(fold_dir / "metrics.json")["stores"]
    vocab = read_json(cfg.features_root / stores["units"] / "meta.json")["vocab"] if stores.get("units") else \
        {"brand": {}, "color": {}}
    tokenizer = load_tokenizer(cfg.model_dir, cfg.encoders_root)
    model = _model(cfg, tokenizer, vocab, load_encoder(cfg.model_dir, len(tokenizer), cfg.encoders_root))
    weights = load_torch(fold_dir / "best.pt")
    model.load_state_dict({k.replace("._orig_mod", ""): v for k, v in weights.items()})  # saved from a compiled run
    with atomic_path(out, is_dir=True) as tmp:
        encoder = getattr(model.encoder, "_orig_mod", model.encoder)
        encoder.save_pretrained(tmp / "encoder", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "encoder")
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")},
                  tmp / "head.safetensors")
        write_json(dict(cfg), tmp / "config.json")
        write_json(vocab, tmp / "vocab.json")
    return out


def _model(cfg, tokenizer, vocab: dict, encoder) -> CrossEncoder:
    return CrossEncoder(encoder, cfg, cfg.ngram_buckets, len(vocab["brand"]), len(vocab["color"]))


def load(folder: Path):
    """(config, tokenizer, model in eval mode, vocab) of an exported folder."""
    folder = Path(folder)
    if not (folder / "head.safetensors").exists():
        raise EsciError(f"{folder}: not an exported model (no head.safetensors); fix: python -m esci.predict "
                        f"export FOLD_DIR {folder}")
    cfg = Config(read_json(folder / "config.json"))
    vocab = read_json(folder / "vocab.json")
    tokenizer = load_tokenizer(str(folder / "encoder"))
    model = _model(cfg, tokenizer, vocab, load_encoder(str(folder / "encoder")))
    missing, unexpected = model.load_state_dict(load_file(folder / "head.safetensors"), strict=False)
    if unexpected or any(not k.startswith("encoder.") for k in missing):
        raise EsciError(f"{folder}/head.safetensors: does not fit the config ({unexpected or missing}); fix: export "
                        f"the model again")
    return cfg, tokenizer, model.eval(), vocab


def read_pairs(path: Path) -> pd.DataFrame:
    """Pairs from a parquet file or an ESCI folder, with every product field present and cleaned."""
    path = Path(path)
    if path.is_dir():
        if not (path / EXAMPLES).exists():
            raise EsciError(f"{path}: a folder without {EXAMPLES}; fix: give a pairs parquet file or an ESCI folder")
        examples, products = load_esci(path)
        text = products.rename(columns={v: k for k, v in TEXT_FIELDS.items()}).iloc[examples.pidx.to_numpy()]
        return pd.concat([examples[["example_id", "query", "product_locale"]].reset_index(drop=True),
                          text[list(TEXT_FIELDS)].reset_index(drop=True)], axis=1)
    if not path.exists():
        raise EsciError(f"{path}: file not found; fix: give a pairs parquet file or an ESCI folder")
    pairs = pd.read_parquet(path)
    for col in ("query", "product_locale"):
        if col not in pairs:
            raise EsciError(f"{path}: column '{col}' is missing; fix: give query, product_locale and product fields "
                            f"({', '.join(TEXT_FIELDS)})")
    for field in TEXT_FIELDS:
        pairs[field] = clean_text(pairs[field] if field in pairs else pd.Series([None] * len(pairs)))
    if "example_id" not in pairs:
        pairs.insert(0, "example_id", np.arange(len(pairs)))
    return pairs.reset_index(drop=True)


@torch.no_grad()
def predict(folder: Path, pairs: pd.DataFrame) -> pd.DataFrame:
    cfg, tokenizer, model, vocab = load(folder)
    feats = memory_features(cfg, tokenizer, pairs, vocab, takes_types(tokenizer, model.encoder.config))
    order = np.argsort(feats.lengths, kind="stable")
    out = torch.zeros(len(pairs), model.head[-1].out_features)
    for start in range(0, len(order), cfg.eval_batch_size):
        rows = order[start:start + cfg.eval_batch_size]
        out[torch.from_numpy(rows)] = model(feats.batch(rows, cfg.pad_multiple)).float()
    scores = outputs_frame(cfg.head, pairs.example_id.to_numpy(), out)
    if cfg.head == "cls4":
        scores["p_sub"] = sub_prob(scores)
    return scores


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["export"]:
            ap = argparse.ArgumentParser(prog="python -m esci.predict export", description="export a trained fold")
            ap.add_argument("fold_dir", type=Path)
            ap.add_argument("out", type=Path)
            a = ap.parse_args(argv[1:])
            print(f"exported {export(a.fold_dir, a.out)}")
            return
        ap = argparse.ArgumentParser(prog="python -m esci.predict", description=__doc__.split("\n")[0])
        ap.add_argument("--model", type=Path, required=True, help="a folder written by `export`")
        ap.add_argument("--input", type=Path, required=True, help="pairs parquet file or ESCI folder")
        ap.add_argument("--output", type=Path, required=True, help="scores parquet file")
        a = ap.parse_args(argv)
        scores = predict(a.model, read_pairs(a.input))
        write_parquet(scores, a.output)
        print(f"{len(scores)} pairs scored: {a.output}")
    except EsciError as e:
        print(f"predict: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
