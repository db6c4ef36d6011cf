"""Stage 1: load and validate the ESCI files (or generate the sample), build the task tables and folds.

Usage: python src/01_prepare.py configs/sample.py configs/t2_a.py [key=value ...]
Out: output/<profile>/data/task<k>/ (see esci.prepare).
"""
from esci.config import from_argv
from esci.log import setup
from esci.prepare import prepare

if __name__ == "__main__":
    setup("prepare")
    prepare(from_argv())
