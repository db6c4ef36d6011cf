"""What the OOF explorer notebooks compute, kept here so the three notebooks stay thin and the logic is tested.

In: only the finished outputs under output/<profile>/ (prepared tables, experiments' fold*/oof.parquet, a blend's
oof.parquet, cv.csv and blend.json). Out: tidy frames: OOF rows joined with their labels and text, confusion
matrices, per-locale metrics, per-query nDCG, reliability bins with the expected calibration error, and the most
confident errors; and the notebooks' plots (matplotlib, imported only when a plot is drawn).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import LABELS, EsciError
from .config import ROOT, SHARED_DIRS
from .io import read_json
from .metrics import ndcg_per_query
from .tasks import METRIC_NAME, PROB_COLUMNS, TASKS, expected_gain, predicted_labels, sub_prob, task_metric, truth_labels

TEXT = ["query", "title", "brand", "color"]


def profile_dir(profile: str = "cpu", output_dir: str | None = None, backbone: str | None = None) -> Path:
    """The runs of one encoder: output/<profile>/<backbone> ($OUTPUT_DIR or the repository's output/; $BACKBONE,
    else the only encoder there, else minilm), checked to exist."""
    root = Path(output_dir or os.environ.get("OUTPUT_DIR") or ROOT / "output") / profile
    if not root.exists():
        raise EsciError(f"{root}: no outputs; fix: run bash run_task<k>.sh (PROFILE={profile}) first")
    backbone = backbone or os.environ.get("BACKBONE")
    if not backbone:
        found = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in SHARED_DIRS)
        backbone = found[0] if len(found) == 1 else "minilm"
    if not (root / backbone).exists():
        raise EsciError(f"{root / backbone}: no runs of encoder {backbone}; fix: set BACKBONE to one of "
                        f"{sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in SHARED_DIRS)}")
    return root / backbone


def labelled(root: Path, task: int) -> pd.DataFrame:
    """The task's training rows with their labels, fold and text (root: a profile_dir)."""
    ex = pd.read_parquet(root.parent / "data" / "examples.parquet")
    train = ex[ex[TASKS[task].version].eq(1) & ex.split.eq("train")].reset_index(drop=True)
    text = pd.read_parquet(root.parent / "data" / "products.parquet", columns=TEXT[1:]).iloc[train.pidx.to_numpy()]
    train = pd.concat([train, text.reset_index(drop=True)], axis=1)
    return train[["example_id", "query_id", "product_id", "product_locale", "esci_label", "fold", *TEXT]]


def member_oof(root: Path, name: str) -> pd.DataFrame:
    """All folds' OOF rows of one experiment."""
    parts = sorted((root / name).glob("fold*/oof.parquet"))
    if not parts:
        raise EsciError(f"{root / name}: no fold*/oof.parquet; fix: train the experiment first")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def blend_result(root: Path, blend: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(blended OOF, cv table of members and blend, blend.json)."""
    d = root / blend
    return pd.read_parquet(d / "oof.parquet"), pd.read_csv(d / "cv.csv"), read_json(d / "blend.json")


def joined(train: pd.DataFrame, oof: pd.DataFrame) -> pd.DataFrame:
    """OOF predictions on their labelled rows, by example_id; every row must have one."""
    df = train.merge(oof.drop(columns=["fold"], errors="ignore"), on="example_id", how="inner", validate="one_to_one")
    if len(df) != len(train):
        raise EsciError(f"OOF covers {len(df)} of {len(train)} training rows; fix: finish every fold")
    return df


def confusion(task: int, df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Rows: given label; columns: predicted label; counts."""
    labels = list(LABELS) if task != 3 else ["S", "N"]
    pred = predicted_labels(2 if task == 1 else task, df, threshold)
    return pd.crosstab(pd.Categorical(truth_labels(task, df), labels), pd.Categorical(pred, labels),
                       rownames=["given"], colnames=["predicted"], dropna=False)


def per_locale(task: int, df: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    rows = [{"locale": loc, "queries": g.query_id.nunique(), "rows": len(g),
             METRIC_NAME[task]: task_metric(task, g, threshold)}
            for loc, g in [("all", df), *sorted(df.groupby("product_locale"))]]
    return pd.DataFrame(rows)


def confidence(task: int, df: pd.DataFrame, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted label, whether it is right) per row."""
    if task == 3:
        p = sub_prob(df).to_numpy()
        pred_s = p > threshold
        return np.where(pred_s, p, 1 - p), pred_s == truth_labels(3, df).eq("S").to_numpy()
    probs = df[PROB_COLUMNS["cls4"]].to_numpy()
    return probs.max(1), np.array(LABELS)[probs.argmax(1)] == df.esci_label.to_numpy()


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Equal-width confidence bins: mean confidence, accuracy and count; and the expected calibration error."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table = pd.DataFrame({"bin": which, "conf": conf, "correct": correct.astype(float)}).groupby("bin").agg(
        confidence=("conf", "mean"), accuracy=("correct", "mean"), rows=("conf", "size")).reset_index()
    ece = float((table.rows * (table.confidence - table.accuracy).abs()).sum() / max(len(conf), 1))
    return table, ece


def confident_errors(task: int, df: pd.DataFrame, n: int = 20, threshold: float = 0.5) -> pd.DataFrame:
    """The n wrong predictions made with the highest confidence, with their query and product text."""
    conf, right = confidence(task, df, threshold)
    pred = predicted_labels(2 if task == 1 else task, df, threshold)
    out = df.assign(given=truth_labels(task, df), predicted=pred.to_numpy(), confidence=conf)[~right]
    cols = ["example_id", "product_locale", "given", "predicted", "confidence", *TEXT]
    return out.sort_values(["confidence", "example_id"], ascending=[False, True])[cols].head(n).reset_index(drop=True)


def curves(root: Path, name: str) -> pd.DataFrame:
    """The training log of every fold of an experiment (train_log.jsonl): step, fold, loss and its terms, the first
    learning rate, examples/s; evaluation lines left out."""
    rows = []
    for path in sorted((root / name).glob("fold*/train_log.jsonl")):
        log = pd.read_json(path, lines=True)
        if "eval" in log:
            log = log[log["eval"].isna()].drop(columns="eval")
        rows.append(log.assign(fold=path.parent.name, lr=log.lr.str[0]))
    if not rows:
        raise EsciError(f"{root / name}: no fold*/train_log.jsonl; fix: train the experiment with this version")
    return pd.concat(rows, ignore_index=True)


def fold_figures(root: Path, task: int, members: list[str]) -> pd.DataFrame:
    """Each member's steps and task metric per fold (its folds' metrics.json), members as rows."""
    keep = ("fold", "steps", f"task{task}_{METRIC_NAME[task]}")
    rows = [{"member": m, **{k: v for k, v in read_json(p).items() if k in keep}}
            for m in members for p in sorted((root / m).glob("fold*/metrics.json"))]
    return pd.DataFrame(rows).pivot(index="member", columns="fold")


def per_query(task: int, df: pd.DataFrame, threshold: float = 0.5) -> pd.Series:
    """Task 1: each query's nDCG of the blended score; task 2: its nDCG ranked by expected gain; task 3: its share
    of right substitute calls."""
    if task == 1:
        return ndcg_per_query(df)
    if task == 2:
        return ndcg_per_query(df.assign(score=expected_gain(df[PROB_COLUMNS["cls4"]].to_numpy())))
    right = pd.Series(confidence(task, df, threshold)[1], index=df.index)
    return right.groupby(df.query_id).mean().rename("accuracy")


def plot_weights(cv: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt
    members = cv[cv.member != "blend"]
    _, ax = plt.subplots(figsize=(5, 2.5))
    ax.barh(members.member, members.weight)
    ax.set_xlabel("blend weight")
    ax.set_xlim(0, 1)
    plt.show()


def plot_curves(root: Path, members: list[str]) -> None:
    """Training loss against the optimizer step, one panel per member, one line per fold."""
    import matplotlib.pyplot as plt
    _, axes = plt.subplots(1, len(members), figsize=(4 * len(members), 3), squeeze=False)
    for ax, member in zip(axes[0], members):
        for fold, part in curves(root, member).groupby("fold"):
            ax.plot(part.step, part.loss, label=fold)
        ax.set_title(member)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
    axes[0][0].legend()
    plt.tight_layout()
    plt.show()


def plot_hist(values: pd.Series, xlabel: str) -> None:
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(5, 3))
    ax.hist(values, bins=20)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("queries")
    plt.show()


def plot_confusion(cm: pd.DataFrame) -> None:
    """Row-normalized colours, counts written in the cells."""
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm.div(cm.sum(axis=1).clip(lower=1), axis=0), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm.columns)), cm.columns)
    ax.set_yticks(range(len(cm.index)), cm.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("given")
    for (i, j), v in np.ndenumerate(cm.to_numpy()):
        ax.text(j, i, v, ha="center", va="center")
    plt.show()


def plot_reliability(bins: pd.DataFrame, ece: float) -> None:
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot(bins.confidence, bins.accuracy, marker="o")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"ECE {ece:.3f}")
    plt.show()
