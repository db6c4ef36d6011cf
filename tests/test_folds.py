import subprocess
import sys
from pathlib import Path

from esci.folds import make_folds


def training_rows(esci):
    examples, _ = esci
    return examples[examples.split.eq("train")]


def test_folds_group_queries_and_stratify(esci):
    train = training_rows(esci)
    folds = make_folds(train, n_folds=4, seed=1)
    assert folds.query_id.is_unique and set(folds.fold) == {0, 1, 2, 3}
    assert sorted(folds.query_id) == sorted(train.query_id.unique())
    rows = train.merge(folds, on="query_id")
    per_fold = rows.drop_duplicates("query_id").groupby("fold").product_locale.value_counts(normalize=True)
    for loc in ("us", "es", "jp"):
        share = per_fold.xs(loc, level=1)
        assert share.max() - share.min() < 0.2, share
    queries_with_s = rows[rows.esci_label == "S"].drop_duplicates("query_id").groupby("fold").size()
    assert queries_with_s.max() - queries_with_s.min() <= 3


SRC = str(Path(__file__).resolve().parents[1] / "src")
FOLD_SCRIPT = """
import sys
from esci.data import load_esci
from esci.folds import make_folds
examples, _ = load_esci(sys.argv[1])
print(make_folds(examples[examples.split.eq("train")], 5, 42).to_csv(index=False))
"""


def test_folds_identical_across_processes(sample_dir):
    outs = [subprocess.run([sys.executable, "-c", FOLD_SCRIPT, str(sample_dir)], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": seed, "PYTHONPATH": SRC}).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 50


def test_folds_change_with_seed(esci):
    train = training_rows(esci)
    assert not make_folds(train, 5, 1).equals(make_folds(train, 5, 2))


def test_a_query_split_across_versions_never_trains_the_fold_that_validates_it(tmp_path, raw):
    """One fold assignment for every task: a task-1 experiment trained on the large version keeps every row of a
    query out of the fold that validates that query, also the rows outside the small version."""
    from esci.config import load_config
    from esci.data import EXAMPLES, PRODUCTS
    from esci.prepare import experiment_rows, load_examples, prepare, task_rows
    ex, pr = raw
    q = ex[ex.small_version.eq(1) & ex.split.eq("train")].query_id.iat[0]
    ex.loc[ex.index[ex.query_id.eq(q)][::2], "small_version"] = 0
    data = tmp_path / "data"
    data.mkdir()
    ex.to_parquet(data / EXAMPLES, index=False)
    pr.to_parquet(data / PRODUCTS, index=False)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={data}", "task=1",
                                                      "rows=large"])
    prepare(cfg)
    examples = load_examples(cfg)
    train, _ = experiment_rows(cfg, examples)
    t1, _ = task_rows(examples, 1)
    q_fold = int(train.fold[train.query_id.eq(q)].iat[0])
    assert train.fold[train.query_id.eq(q)].eq(q_fold).all() and t1.fold[t1.query_id.eq(q)].eq(q_fold).all()
    for fold in range(cfg.n_folds):
        fit = train[train.fold != fold]
        assert not fit.query_id.isin(t1.query_id[t1.fold == fold]).any()
        assert fit.query_id.eq(q).any() == (fold != q_fold)
    assert sorted(train.example_id) == sorted(ex.example_id[ex.split.eq("train")])
