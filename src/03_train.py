"""Stage 3: fine-tune one fold of one experiment and write its OOF and test predictions.

Usage: python src/03_train.py configs/cpu.py configs/t2_a.py fold=0 [key=value ...]
       accelerate launch src/03_train.py ...      (several GPUs or nodes)
In: the prepared tables (stage 1), the feature stores (made on first use under output/<profile>/features/),
    MODEL_DIR or the pre-training run named by init_from, label issues named by exclude_from.
Out: output/<profile>/<name>/fold<k>/ (see esci.train); skipped when metrics.json is there and was made from
     the same inputs; a killed run resumes from its last checkpoint.
"""
from esci.cli import run_stage
from esci.train import train_fold

if __name__ == "__main__":
    run_stage("train", __doc__, lambda cfg: train_fold(cfg, cfg.fold))
