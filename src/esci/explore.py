"""What the OOF explorer notebooks compute, kept here so the three notebooks stay thin and the logic is tested.

In: only the finished outputs under output/<profile>/ (prepared tables, experiments' fold*/oof.parquet, a blend's
oof.parquet, cv.csv and blend.json). Out: tidy frames: OOF rows joined with their labels and text, confusion
matrices, per-locale metrics, per-query nDCG, reliability bins with the expected calibration error, and the most
confident errors; and the notebooks' plots (matplotlib, imported only when a plot is drawn).
`python -m esci.explore` re-executes the three notebooks in place, so that they are committed with their figures.
"""
from __future__ import annotations

import os
import sys
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


def run_dir(root: Path, name: str) -> Path:
    """An experiment's folder: under root (the blend's encoder), else under the one other encoder of the profile
    that has it (a member whose config file names its own encoder)."""
    if (root / name).is_dir():
        return root / name
    found = sorted(d for d in root.parent.glob(f"*/{name}") if d.is_dir())
    if len(found) != 1:
        where = f"under {len(found)} encoders ({', '.join(d.parent.name for d in found)})" if found else "nowhere"
        raise EsciError(f"{root / name}: missing, and {where} else in {root.parent}; fix: train it, or set BACKBONE to "
                        f"its encoder")
    return found[0]


def member_oof(root: Path, name: str) -> pd.DataFrame:
    """All folds' OOF rows of one experiment."""
    parts = sorted(run_dir(root, name).glob("fold*/oof.parquet"))
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
    for path in sorted(run_dir(root, name).glob("fold*/train_log.jsonl")):
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
            for m in members for p in sorted(run_dir(root, m).glob("fold*/metrics.json"))]
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
    members = cv[~cv.member.isin(["blend", "stack"])]
    _, ax = plt.subplots(figsize=(5, 2.5))
    ax.barh(members.member, members.weight)
    ax.set_title("Blend weights, tuned on the OOF predictions")
    ax.set_xlabel("weight in the blend (share, 0-1)")
    ax.set_ylabel("member")
    ax.set_xlim(0, 1)
    plt.show()


def plot_curves(root: Path, members: list[str]) -> None:
    """Training loss against the optimizer step, one panel per member, one line per fold."""
    import matplotlib.pyplot as plt
    _, axes = plt.subplots(1, len(members), figsize=(4 * len(members), 3), squeeze=False)
    for ax, member in zip(axes[0], members):
        for fold, part in curves(root, member).groupby("fold"):
            ax.plot(part.step, part.loss, label=fold)
        ax.set_title(f"{member}: training loss by fold")
        ax.set_xlabel("optimizer step (count)")
        ax.set_ylabel("loss (mean over the logged steps)")
    axes[0][0].legend()
    plt.tight_layout()
    plt.show()


def plot_hist(values: pd.Series, xlabel: str) -> None:
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(5, 3))
    ax.hist(values, bins=20)
    ax.set_title(f"Over the training queries: {xlabel}")
    ax.set_xlabel(f"{xlabel} (0-1)")
    ax.set_ylabel("queries (count)")
    plt.show()


def plot_confusion(cm: pd.DataFrame) -> None:
    """Row-normalized colours, counts written in the cells."""
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cm.div(cm.sum(axis=1).clip(lower=1), axis=0), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm.columns)), cm.columns)
    ax.set_yticks(range(len(cm.index)), cm.index)
    ax.set_title("Confusion (counts; colour: share of the row)")
    ax.set_xlabel("predicted label")
    ax.set_ylabel("given label")
    for (i, j), v in np.ndenumerate(cm.to_numpy()):
        ax.text(j, i, v, ha="center", va="center")
    plt.show()


def plot_reliability(bins: pd.DataFrame, ece: float) -> None:
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot(bins.confidence, bins.accuracy, marker="o")
    ax.set_title(f"Reliability of the predicted label (ECE {ece:.3f})")
    ax.set_xlabel("confidence (probability, mean of the bin)")
    ax.set_ylabel("accuracy (share right in the bin)")
    plt.show()


NOTEBOOKS = [ROOT / "notebooks" / f"task{t}_oof_explorer.ipynb" for t in (1, 2, 3)]


def execute_notebooks(paths: list[Path] = tuple(NOTEBOOKS), output_dir: str | None = None, profile: str = "cpu",
                      write: bool = False) -> list:
    """Run every cell of each notebook (an error in any cell raises) on the outputs under output_dir (the kernel
    reads OUTPUT_DIR and PROFILE); write=True saves each with its outputs in place. Returns the executed notebooks."""
    import nbformat
    from nbclient import NotebookClient
    done = []
    saved = {k: os.environ.get(k) for k in ("OUTPUT_DIR", "PROFILE")}
    os.environ.update({"PROFILE": profile, **({"OUTPUT_DIR": str(output_dir)} if output_dir else {})})
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
            if write:
                nbformat.write(nb, path)
            done.append(nb)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return done


def main(argv: list[str] | None = None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description="Re-execute the OOF explorer notebooks in place (with their outputs and "
                                             "figures) on a run's outputs, after bash run_task2.sh, run_task3.sh "
                                             "and run_task1.sh.")
    ap.add_argument("--output-dir", help="the drivers' OUTPUT_DIR (default $OUTPUT_DIR or output/)")
    ap.add_argument("--profile", default="cpu", help="the drivers' PROFILE (default cpu)")
    ap.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS, help="default: the three task explorers")
    a = ap.parse_args(argv)
    try:
        for path, nb in zip(a.notebooks, execute_notebooks(a.notebooks, a.output_dir, a.profile, write=True)):
            images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
            print(f"{path}: executed, {images} figures")
    except EsciError as e:
        print(f"explore: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
