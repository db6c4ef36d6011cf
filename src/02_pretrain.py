"""Stage 2: multi-task pre-training of the encoder on the product catalog (MLM, Product2Query, brand/color, SimCSE).

Usage: python src/02_pretrain.py configs/sample.py configs/pt.py [key=value ...]
       accelerate launch src/02_pretrain.py ...      (several GPUs or nodes)
Out: output/<profile>/<name>/encoder/ and id_tables.pt (see esci.pretrain); fine-tuning configs start from it
with init_from="<name>". Skipped when metrics.json is already there.
"""
from esci.config import from_argv
from esci.log import setup
from esci.pretrain import pretrain

if __name__ == "__main__":
    setup("pretrain")
    pretrain(from_argv())
