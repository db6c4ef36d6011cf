"""Stage 4: confident learning on one experiment's OOF; writes the label issues a `*_clean` experiment drops.

Usage: python src/04_clean_labels.py configs/cpu.py configs/t1_a.py
In: every fold of the experiment (stage 3) and the prepared tables.
Out: output/<profile>/<name>/{label_issues.parquet, clean_report.json} (see esci.cleaning).
"""
from esci.cleaning import clean
from esci.cli import run_stage
from esci.members import load_member
from esci.prepare import experiment_rows, load_examples


def main(cfg):
    train, test = experiment_rows(cfg, load_examples(cfg))
    oof, _ = load_member(cfg, train, test)
    clean(cfg, train, oof)


if __name__ == "__main__":
    run_stage("clean", __doc__, main)
