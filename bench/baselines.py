"""Peers of the fine-tuned models, computed in the same run on the same folds: CV and, where the test split is
labelled, test.

Usage: python bench/baselines.py [configs...] [key=value ...]   (default configs/cpu.py configs/t2_a.py)
       python bench/baselines.py configs/cpu.py configs/blend_t1.py          (task 1's peers)
Task 1: TF-IDF char and word cosines and BM25 (esci.lexical's features); zero-shot bi-encoders (esci.dense's
cosines): biencoder_zero_shot, model_dir's encoder (the packaged MiniLM by default) over title brand color bullets,
and zero_shot_<encoder>_title_desc over title and description for the packaged MiniLM, model_dir and each of
bi_encoders; and a LightGBM ranker over lexical + biencoder_zero_shot + query-group features, out-of-fold on the
same folds (esci.stack with the bi-encoder in the place of cross-encoder members: the strongest thing here built
without a cross-encoder). The official baseline's method, a plain cross-encoder trained with BCE on the gains, is
configs/t1_bce.py, trained like any experiment; its row appears with the others once its folds are finished.
Tasks 2/3: majority class and TF-IDF + logistic regression (OOF micro-F1).
Beside them: every finished experiment whose head serves the task and whose rows cover the task's (CV over its OOF,
test from its fold-averaged test predictions) and every blend of the task (its CV; test from its test.parquet).
Out: output/<profile>/tables/baselines_task<k>.csv (kind, model, cv, test), printed too.
"""
import sys

import numpy as np
import pandas as pd

from common import bench_config, scored, write_table
from esci import EsciError, baselines
from esci.config import ROOT, encoder_name, member_config
from esci.dense import dense_features
from esci.io import read_json
from esci.lexical import lexical_features
from esci.members import load_member
from esci.prepare import load_examples, prepare, task_rows, with_text
from esci.stack import design, fit_predict
from esci.submission import labelled_test
from esci.tasks import HEADS, METRIC_NAME


def task1_peers(cfg, train, test, labelled):
    lex = lexical_features(cfg)
    tr, te = (df.sort_values("example_id").reset_index(drop=True) for df in (train, test))
    rows = []
    for f in ("tfidf_char", "tfidf_word", "bm25"):
        score = lex[["example_id", f]].rename(columns={f: "score"})
        rows.append(("peer", f, scored(1, tr, score), scored(1, labelled, score)))
    encoders = list(dict.fromkeys(["", cfg.model_dir, *cfg.bi_encoders]))
    cos = dense_features(cfg, [cfg.model_dir], ["side"]).merge(
        dense_features(cfg, encoders, ["title_desc"]), on="example_id")
    side = f"{encoder_name(cfg.model_dir)}.cos_side"
    for column, name in [(side, "biencoder_zero_shot"),
                         *((f"{encoder_name(e)}.cos_title_desc", f"zero_shot_{encoder_name(e)}_title_desc")
                           for e in encoders)]:
        score = cos[["example_id", column]].rename(columns={column: "score"}).fillna({"score": -1.0})
        rows.append(("peer", name, scored(1, tr, score), scored(1, labelled, score)))
    bi = {"biencoder": tr[["example_id"]].merge(cos[["example_id", side]], on="example_id").rename(
        columns={side: "score"})}
    bi_test = {"biencoder": te[["example_id"]].merge(cos[["example_id", side]], on="example_id").rename(
        columns={side: "score"})}
    oof, pred = fit_predict(1, tr, design(tr, bi, lex), te, design(te, bi_test, lex), dict(cfg.stack_params),
                            cfg.seed, cfg.threads)
    rows.append(("peer", "lightgbm_lexical_biencoder", scored(1, tr, oof), scored(1, labelled, pred)))
    return rows


def finished_runs(cfg, train, test, labelled):
    """Every finished experiment that serves the task over its rows, and every blend of the task over the same rows."""
    rows, root = [], cfg.run_dir.parent
    for run in sorted(d for d in root.iterdir() if d.is_dir()) if root.exists() else []:
        if (run / "blend.json").exists():
            info = read_json(run / "blend.json")
            if info["task"] != cfg.task:
                continue
            ids = pd.read_parquet(run / "oof.parquet", columns=["example_id"]).example_id
            if len(ids) != len(train) or not ids.isin(train.example_id).all():
                print(f"{run.name}: left out (a blend over {len(ids)} other rows than these {len(train)}: made "
                      f"with other data or max_train_queries)")
                continue
            kind = "stack" if "stack" in info else "blend"
            rows.append((kind, run.name, info[METRIC_NAME[cfg.task]],
                         scored(cfg.task, labelled, pd.read_parquet(run / "test.parquet"), info["threshold"])))
        elif (run / "fold0" / "metrics.json").exists() and (ROOT / "configs" / f"{run.name}.py").exists():
            mcfg = member_config(cfg, run.name)
            if cfg.task not in HEADS[mcfg.head].serves:
                continue
            try:
                oof, pred = load_member(mcfg, train, test)
            except EsciError as err:
                print(f"{run.name}: left out ({err})")
                continue
            rows.append(("fine-tuned", run.name, scored(cfg.task, train, oof), scored(cfg.task, labelled, pred)))
    return rows


def main(argv):
    cfg = bench_config("baselines", argv, __doc__)
    prepare(cfg)
    train, test = task_rows(load_examples(cfg), cfg.task)
    labelled = labelled_test(cfg, test)
    if cfg.task == 1:
        rows = task1_peers(cfg, train, test, labelled)
    else:
        text = with_text(cfg, train)
        rows = [("peer", "majority", baselines.majority(cfg.task, text), np.nan),
                ("peer", "tfidf_lr", baselines.tfidf_lr(cfg.task, text, cfg.seed), np.nan)]
    rows += finished_runs(cfg, train, test, labelled)
    table = pd.DataFrame(rows, columns=["kind", "model", "cv", "test"])
    print(f"task {cfg.task} {METRIC_NAME[cfg.task]} ({len(train)} training rows, "
          f"{0 if labelled is None else len(labelled)} labelled test rows)")
    write_table(cfg, table, f"baselines_task{cfg.task}")


if __name__ == "__main__":
    main(sys.argv[1:])
