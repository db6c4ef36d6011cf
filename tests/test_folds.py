import subprocess
import sys

from pathlib import Path


from esci.data import task_tables
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
