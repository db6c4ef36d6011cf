"""Stage 1: load and validate the ESCI files (or generate the sample), make the folds; once for every task.

Usage: python src/01_prepare.py configs/cpu.py [key=value ...]
In: DATA_DIR (or data_dir=): shopping_queries_dataset_{examples,products}.parquet (+ sources.csv); DATA_DIR=sample
    (or no files in input/ under the CPU profile) generates the embedded sample.
Out: output/<profile>/data/ (examples.parquet, products.parquet, test_labels.parquet, summary.json; see
     esci.prepare); skipped when it is complete and made from the same files and settings.
"""
from esci.cli import run_stage
from esci.prepare import prepare

if __name__ == "__main__":
    run_stage("prepare", __doc__, prepare)
