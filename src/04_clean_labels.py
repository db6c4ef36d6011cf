"""Stage 4: confident learning on one experiment's OOF; writes the label issues a `*_clean` experiment drops.

Usage: python src/04_clean_labels.py configs/sample.py configs/t1_a.py
Out: output/<profile>/<name>/{label_issues.parquet, clean_report.json} (see esci.cleaning).
"""
from esci.cleaning import clean
from esci.config import from_argv
from esci.log import setup
from esci.members import load_member
from esci.prepare import experiment_rows, load_examples

if __name__ == "__main__":
    setup("clean")
    cfg = from_argv()
    train, test = experiment_rows(cfg, load_examples(cfg))
    oof, _ = load_member(cfg.run_dir, train, test, cfg.n_folds)
    clean(cfg, train, oof)
