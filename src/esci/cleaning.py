"""Confident learning: find likely label errors in a task's training rows from an experiment's OOF probabilities.

In: an experiment's OOF table (p_E..p_I, or p_sub) and the training labels, joined by example_id.
Out: output/<profile>/<name>/label_issues.parquet (example_id, given_label, suspected_label, rank) with the top
`clean_frac` of training rows by cleanlab's normalized margin among its prune_by_noise_rate issues, and
clean_report.json; when the data directory records flipped labels (the embedded sample), the report holds the
precision and recall of the removed rows against them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues

from . import LABELS, EsciError
from .io import read_json, write_json, write_parquet
from .provenance import FIX, describe, digest, fingerprint
from .sample import NOISE_FILE
from .tasks import PROB_COLUMNS, targets

log = logging.getLogger("esci")


def label_issues(train: pd.DataFrame, oof: pd.DataFrame, head: str, frac: float) -> pd.DataFrame:
    df = train[["example_id", "esci_label"]].merge(oof, on="example_id", validate="one_to_one")
    if head == "cls4":
        probs, names = df[PROB_COLUMNS["cls4"]].to_numpy(), np.array(LABELS)
    elif head == "cls2":
        p = df["p_sub"].to_numpy()
        probs, names = np.stack([1 - p, p], axis=1), np.array(["not S", "S"])
    else:
        raise EsciError(f"{head}: confident learning needs a classifier's OOF probabilities; fix: clean an experiment "
                        f"whose head is cls4 or cls2")
    labels = targets(df, head)
    ranked = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                               return_indices_ranked_by="normalized_margin")
    top = ranked[:int(round(frac * len(df)))]
    return pd.DataFrame({"example_id": df.example_id.to_numpy()[top],
                         "given_label": df.esci_label.to_numpy()[top],
                         "suspected_label": names[probs[top].argmax(1)],
                         "rank": np.arange(len(top))}), len(ranked)


def clean(cfg, train: pd.DataFrame, oof: pd.DataFrame) -> dict:
    """oof: the experiment's OOF (read through members.load_member, which checks every fold's fingerprint)."""
    out = cfg.run_dir
    fp = fingerprint(cfg, ["clean_frac", "head"], folds=[digest(read_json(out / f"fold{k}" / "fingerprint.json"))
                                                         for k in range(cfg.n_folds)])
    if (out / "clean_report.json").exists():
        old = read_json(out / "clean_report.json").get("fingerprint", {})
        if old == fp:
            log.info("%s/label_issues.parquet is complete; skipping", out)
            return read_json(out / "clean_report.json")
        if not cfg.force:
            raise EsciError(f"{out}/label_issues.parquet: made from other inputs ({describe(old, fp)}); {FIX}")
    issues, n_found = label_issues(train, oof, cfg.head, cfg.clean_frac)
    report = {"experiment": cfg.name, "train_rows": len(train), "issues_found": n_found, "removed": len(issues),
              "clean_frac": cfg.clean_frac, "fingerprint": fp}
    noise_path = Path(read_json(cfg.data_root / "summary.json")["data_dir"]) / NOISE_FILE
    if noise_path.exists():
        flipped = set(pd.read_csv(noise_path).example_id) & set(train.example_id)
        hit = len(set(issues.example_id) & flipped)
        report.update(flipped_in_train=len(flipped), precision=hit / max(len(issues), 1),
                      recall=hit / max(len(flipped), 1),
                      base_rate=len(flipped) / len(train))
        print(f"label cleaning {cfg.name}: removed {len(issues)} rows, precision {report['precision']:.3f} "
              f"(base rate {report['base_rate']:.3f}), recall {report['recall']:.3f} of "
              f"{len(flipped)} known flips", flush=True)
    write_parquet(issues, out / "label_issues.parquet")
    write_json(report, out / "clean_report.json")
    return report
