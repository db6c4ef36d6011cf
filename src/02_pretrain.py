"""Stage 2: multi-task pre-training of the encoder on the product catalog (MLM, Product2Query, brand/color, SimCSE).

Usage: python src/02_pretrain.py configs/cpu.py configs/pt.py [key=value ...]
       accelerate launch src/02_pretrain.py ...      (several GPUs or nodes)
In: the prepared catalog (output/<profile>/data/products.parquet; made by stage 1 if missing), MODEL_DIR.
Out: output/<profile>/<name>/encoder/ and id_tables.pt (see esci.pretrain); fine-tuning configs start from it
     with init_from="<name>". Skipped when metrics.json is there and was made from the same inputs.
"""
from esci.cli import run_stage
from esci.pretrain import pretrain

if __name__ == "__main__":
    run_stage("pretrain", __doc__, pretrain)
