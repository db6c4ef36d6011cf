"""Release scale: the data path timed on a generated data set of the real release's size and text lengths.

Usage: python bench/scale.py --rows N [--out output/scale] [--legacy-rows 20000] [--legacy-products 20000]
Generates (or reuses, under --out) an ESCI-shaped set of about N judgements with esci.sample (about 20 per query,
0.7 products per judgement, real text lengths, HTML, missing fields), then times in this one process:
  prepare_s   load + validate + clean the files, folds, tables written (src/01_prepare.py's work)
  features_s  the token store (the packaged MiniLM tokenizer, max_len 256, the paper's fields) and the unit store
  reuse_s     what a second fold of an experiment spends to get its fit/val/test features (the stores reused)
  blend6_s    a task-1 blend of 6 members over random outputs (6 x 5 folds read, weight search, tables written)
  submit_s    the task-1 submission written and validated
  lexical_s   the lexical match features of every judgement (esci.lexical), made once per data set
  stack6_s    the blend of 6 again with stack=True: LightGBM over the 6 members, lexical and query-group features,
              fit and predicted out of fold on the 5 folds (esci.stack)
  pt_corpus_s pre-training's corpora over the whole catalog (esci.corpora: the store of token arrays, then every
              task's rows with the GPU profile's pt_max_len 256 and every task on), what 02_pretrain does before
              its first step
  dense_s     the bi-encoder stores' work (esci.dense) on --dense-products products: --dense-model (the packaged
              MiniLM by default, or an encoder folder such as all-mpnet-base-v2's) embedding their three texts
              (title; title brand color bullets; description) at 256 tokens, here (the GPU where there is one),
              scaled to 1M products; beside it the compute plan's GPU estimate for the same texts
and two baselines of the first implementation, on slices, in the same run: its vocabulary + featurize
(bench/legacy_featurize.py) on --legacy-rows training rows, scaled to 1M rows beside the new prepare + features per
1M rows, and its pre-training corpora (bench/legacy_pretrain_corpora.py) on --legacy-products products, scaled to
1M products beside pt_corpus_s per 1M products: their ratios are the speed-ups.
The last line is:
  scale: rows=<N> prepare_s=<..> features_s=<..> reuse_s=<..> blend6_s=<..> lexical_s=<..> stack6_s=<..>
         pt_corpus_s=<..> pt_products=<..> peak_rss_gib=<..> per_1M_rows_min=<..> pt_per_1M_products_min=<..>
         dense_per_1M_products_min=<..>
(one line; per_1M_rows_min: (prepare_s + features_s) / N * 1M / 60; peak_rss_gib: this process's peak resident
memory, every stage above included).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

import legacy_featurize
import legacy_pretrain_corpora
import pyarrow.parquet as pq
from esci.blend import run_blend
from esci.config import encoder_name, load_config
from esci.corpora import corpora
from esci.lexical import lexical_features
from esci.data import TEXT_FIELDS, has_esci_files
from esci.dense import FIELDS, Embedder
from esci.features import features_for, join_fields, token_store, unit_store
from esci.io import write_parquet
from esci.log import setup
from esci.encoder import gpu_texts_per_second, load_tokenizer
from esci.prepare import experiment_rows, load_examples, prepare, task_rows, with_text
from esci.provenance import fold_fingerprint, record
from esci.sample import write_sample
from esci.submission import validate, write_task1

ROWS_PER_QUERY = 19.93  # what esci.sample generates at release size


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def timed(what: str, fn):
    t = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t
    print(f"{what}: {s:.1f} s (peak RSS so far {peak_rss_gib():.2f} GiB)", flush=True)
    return out, s


def fake_members(cfg, examples: pd.DataFrame, n: int, seed: int = 0) -> list:
    """n 4-class experiments with random (Dirichlet) OOF and test predictions over the large version's rows."""
    rng = np.random.default_rng(seed)
    train, test = experiment_rows(cfg, examples)
    members = []
    for m in range(n):
        mcfg = cfg.replace(name=f"fake{m}", head="cls4")
        for k in range(cfg.n_folds):
            for name, rows in (("oof", train[train.fold == k]), ("test", test)):
                p = rng.dirichlet([4, 2, 0.3, 1], len(rows))
                df = pd.DataFrame(p, columns=["p_E", "p_S", "p_C", "p_I"]).assign(example_id=rows.example_id.to_numpy())
                df["score"] = p @ np.array([1.0, 0.1, 0.01, 0.0])
                write_parquet(df, mcfg.run_dir / f"fold{k}" / f"{name}.parquet")
            record(mcfg.run_dir / f"fold{k}", fold_fingerprint(mcfg))
            (mcfg.run_dir / f"fold{k}" / "metrics.json").write_text("{}\n")
        members.append(mcfg)
    return members


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, required=True, help="judgements in the generated set (release: 2,600,000)")
    ap.add_argument("--out", default="output/scale")
    ap.add_argument("--legacy-rows", type=int, default=20000, help="rows of the legacy featurize baseline")
    ap.add_argument("--legacy-products", type=int, default=20000,
                    help="products of the legacy pre-training corpora baseline")
    ap.add_argument("--dense-products", type=int, default=2000, help="products embedded to time the bi-encoder")
    ap.add_argument("--dense-model", default="", help="the bi-encoder timed (an encoder folder; default the packaged "
                    "MiniLM)")
    a = ap.parse_args()
    setup("scale")
    n_queries = max(int(round(a.rows / ROWS_PER_QUERY)), 50)
    data = Path(a.out) / f"data_{n_queries}q"
    if not has_esci_files(data):
        timed(f"generate {n_queries} queries", lambda: write_sample(data, n_queries, seed=0))
    run = Path(a.out) / f"run_{n_queries}q"
    shutil.rmtree(run, ignore_errors=True)
    cfg = load_config("configs/gpu.py", "configs/t2_a.py", overrides=[f"data_dir={data}", f"output_dir={run}",
                                                                      "model_dir=", "init_from="])
    tokenizer = load_tokenizer(cfg.model_dir)
    _, prepare_s = timed("prepare", lambda: prepare(cfg))
    _, features_s = timed("features", lambda: (token_store(cfg, tokenizer), unit_store(cfg)))

    def second_fold():
        train, test = experiment_rows(cfg, load_examples(cfg))
        return [features_for(cfg, tokenizer, df) for df in (train[train.fold != 1], train[train.fold == 1], test)]
    feats, reuse_s = timed("second fold's features", second_fold)
    examples = load_examples(cfg)
    rows = len(examples)
    members, _ = timed("6 fake members written", lambda: fake_members(cfg, examples, 6))
    t1_train, t1_test = task_rows(examples, 1)
    blend_cfg = cfg.replace(name="blend6", task=1, members=[m.name for m in members])
    _, blend_s = timed("blend of 6 (task 1)", lambda: run_blend(blend_cfg, t1_train, t1_test, members))

    def submit():
        pred = t1_test.merge(pd.read_parquet(blend_cfg.run_dir / "test.parquet"), on="example_id")
        write_task1(pred, run / "submissions" / "task1.csv")
        return validate(1, run / "submissions" / "task1.csv", t1_test)
    timed("task-1 submission written and validated", submit)
    _, lexical_s = timed("lexical features", lambda: lexical_features(cfg))
    _, stack_s = timed("stack of 6 (task 1)", lambda: run_blend(blend_cfg.replace(name="stack6", stack=True),
                                                                 t1_train, t1_test, members))

    pt_cfg = load_config("configs/gpu.py", "configs/pt.py", overrides=[f"data_dir={data}", f"output_dir={run}",
                                                                       "model_dir="])
    (fit, held, _), pt_s = timed("pre-training corpora", lambda: corpora(pt_cfg, tokenizer))
    pt_products = sum(len(views["simcse"]) for views in (fit, held))
    print("pre-training rows (fit / held out): " + ", ".join(f"{t} {len(fit[t])} / {len(held[t])}" for t in fit))
    del fit, held
    first = next(pq.ParquetFile(pt_cfg.data_root / "products.parquet").iter_batches(batch_size=a.legacy_products))
    catalog = first.to_pandas().rename(columns={"product_locale": "locale"})
    _, legacy_pt_s = timed(f"legacy pre-training corpora ({len(catalog)} products)",
                           lambda: legacy_pretrain_corpora.build_corpora(catalog, tokenizer, pt_cfg,
                                                                         np.random.default_rng(0)))

    texts = [join_fields(first, FIELDS[f], " ").to_pylist() for f in ("title", "side", "desc")]
    texts = [t[:a.dense_products] for t in texts]
    embed = Embedder(a.dense_model, load_tokenizer(a.dense_model), 256, 64)
    runs = [timed(f"bi-encoder store, {f} ({len(t)} products)", lambda t=t: embed(t))
            for f, t in zip(("title", "side", "desc"), texts)]
    dense = [s for _, s in runs]
    dense_s = sum(dense)
    dense_per_1m = dense_s / len(texts[0]) * 1e6 / 60
    # the GPU estimate: each text's tokens (its special tokens too) at the plan GPU's inference rate
    gpu_per_1m = sum(1e6 / gpu_texts_per_second(a.dense_model, float(np.mean(lens)) + 2) for (_, lens), _ in runs) / 60

    train, _ = task_rows(examples, 2)
    part = with_text(cfg, train.iloc[np.random.default_rng(0).choice(len(train), min(a.legacy_rows, len(train)),
                                                                       replace=False)], list(TEXT_FIELDS))
    vocab, vocab_s = timed(f"legacy 3-gram vocabulary ({len(part)} rows)", lambda: legacy_featurize.vocab(part))
    _, legacy_s = timed(f"legacy featurize ({len(part)} rows)",
                        lambda: legacy_featurize.featurize(part, tokenizer, vocab, cfg.fields, cfg.max_len))
    per_1m = (prepare_s + features_s) / rows * 1e6 / 60
    legacy_per_1m = (vocab_s + legacy_s) / len(part) * 1e6 / 60
    print(f"{rows} judgements, {feats[0].tok.q_off.shape[0] - 1} queries, {feats[0].tok.p_off.shape[0] - 1} "
          f"products; mean pair length {np.mean(feats[0].lengths):.0f} tokens")
    print(f"per 1M rows: new prepare + features {per_1m:.2f} min; legacy vocabulary + featurize "
          f"{legacy_per_1m:.2f} min (features only, repeated per fold and experiment); ratio "
          f"{legacy_per_1m / per_1m:.1f}x")
    pt_per_1m = pt_s / pt_products * 1e6 / 60
    legacy_pt_per_1m = legacy_pt_s / len(catalog) * 1e6 / 60
    print(f"per 1M products: pre-training corpora {pt_per_1m:.2f} min; legacy {legacy_pt_per_1m:.2f} min (every run; "
          f"{len(catalog)}-product slice); ratio {legacy_pt_per_1m / pt_per_1m:.1f}x")
    print(f"per 1M products: bi-encoder stores ({encoder_name(a.dense_model)}, 256 tokens, {embed.device.type}) "
          f"{dense_per_1m:.1f} min: "
          + ", ".join(f"{f} {t / len(texts[0]) * 1e6 / 60:.1f}" for f, t in zip(("title", "side", "desc"), dense))
          + f"; on the plan's GPU about {gpu_per_1m:.1f} min (estimate: esci.encoder.gpu_texts_per_second)")
    print(f"scale: rows={rows} prepare_s={prepare_s:.1f} features_s={features_s:.1f} reuse_s={reuse_s:.1f} "
          f"blend6_s={blend_s:.1f} lexical_s={lexical_s:.1f} stack6_s={stack_s:.1f} pt_corpus_s={pt_s:.1f} "
          f"pt_products={pt_products} peak_rss_gib={peak_rss_gib():.2f} per_1M_rows_min={per_1m:.2f} "
          f"pt_per_1M_products_min={pt_per_1m:.2f} dense_per_1M_products_min={dense_per_1m:.1f}")


if __name__ == "__main__":
    main()
