import subprocess
import sys

from pathlib import Path


from esci.data import EXAMPLES, PRODUCTS, task_tables
from esci.folds import attach_folds, make_folds


def test_folds_group_queries_and_stratify(esci):
    train, _ = task_tables(*esci, task=2)
    folds = make_folds(train, n_folds=4, seed=1)
    assert folds.query_id.is_unique and set(folds.fold) == {0, 1, 2, 3}
    rows = attach_folds(train, folds)
    assert rows.groupby("query_id").fold.nunique().max() == 1
    per_fold = rows.drop_duplicates("query_id").groupby("fold").product_locale.value_counts(normalize=True)
    for loc in ("us", "es", "jp"):
        share = per_fold.xs(loc, level=1)
        assert share.max() - share.min() < 0.2, share
    queries_with_s = rows[rows.esci_label == "S"].drop_duplicates("query_id").groupby("fold").size()
    assert queries_with_s.max() - queries_with_s.min() <= 3


SRC = str(Path(__file__).resolve().parents[1] / "src")
FOLD_SCRIPT = """
import sys
from esci.data import load_esci, task_tables
from esci.folds import make_folds
train, _ = task_tables(*load_esci(sys.argv[1]), task=2)
print(make_folds(train, 5, 42).to_csv(index=False))
"""


def test_folds_identical_across_processes(sample_dir):
    outs = [subprocess.run([sys.executable, "-c", FOLD_SCRIPT, str(sample_dir)], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": seed, "PYTHONPATH": SRC}).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 50


def test_folds_change_with_seed(esci):
    train, _ = task_tables(*esci, task=2)
    assert not make_folds(train, 5, 1).equals(make_folds(train, 5, 2))


def test_large_rows_train_task1_but_never_the_fold_that_validates_their_query(tmp_path, raw):
    from esci.config import Config, load_config
    from esci.prepare import fit_rows, load_prepared, prepare
    ex, pr = raw
    # one task-1 training query loses half its rows from the small version: those rows become extra rows
    q = ex[ex.small_version.eq(1) & ex.split.eq("train")].query_id.iat[0]
    part = ex.index[ex.query_id.eq(q)][::2]
    ex.loc[part, "small_version"] = 0
    data = tmp_path / "data"
    data.mkdir()
    ex.to_parquet(data / EXAMPLES, index=False)
    pr.to_parquet(data / PRODUCTS, index=False)
    cfg = load_config("configs/sample.py", overrides=[f"output_dir={tmp_path}", f"data_dir={data}", "task=1",
                                                      "add_large_rows=True", "aug_weight=0.5"])
    prepare(cfg)
    train, _ = load_prepared(cfg)
    large = ex[ex.large_version.eq(1) & ex.split.eq("train")]
    q_fold = int(train.fold[train.query_id.eq(q)].iat[0])
    for fold in range(cfg.n_folds):
        fit = fit_rows(cfg, train, fold)
        assert fit.example_id.is_unique and not fit.query_id.isin(train.query_id[train.fold == fold]).any()
        extra = fit[~fit.example_id.isin(train.example_id)]
        assert (extra.weight == 0.5).all() and extra.example_id.isin(large.example_id).all()
        assert extra.query_id.eq(q).any() == (fold != q_fold)
    full = fit_rows(cfg, train, -1)
    assert sorted(full.example_id) == sorted(large.example_id)
    assert len(fit_rows(Config({**cfg, "add_large_rows": False}), train, -1)) == len(train)
