"""Stage 3: fine-tune one fold of one experiment and write its OOF and test predictions.

Usage: python src/03_train.py configs/sample.py configs/t2_a.py fold=0 [key=value ...]
       accelerate launch src/03_train.py ...      (several GPUs or nodes)
Out: output/<profile>/<name>/fold<k>/ (see esci.train); skipped when metrics.json is already there.
"""
from esci.config import from_argv
from esci.log import setup
from esci.train import train_fold

if __name__ == "__main__":
    setup("train")
    cfg = from_argv()
    train_fold(cfg, cfg.fold)
