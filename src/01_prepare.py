"""Stage 1: load and validate the ESCI files (or generate the sample), make the folds; once for every task.

Usage: python src/01_prepare.py configs/sample.py [key=value ...]
Out: output/<profile>/data/ (see esci.prepare); skipped when summary.json is already there.
"""
from esci.config import from_argv
from esci.log import setup
from esci.prepare import prepare

if __name__ == "__main__":
    setup("prepare")
    prepare(from_argv())
