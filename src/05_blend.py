"""Stage 5: blend several experiments' OOF predictions; weights (and task 3's threshold) tuned on OOF.

Usage: python src/05_blend.py configs/cpu.py configs/blend_t2.py
In: every fold of each member (configs/<member>.py read over configs/<profile>.py); a member of another task
    serves when its head does and its rows cover this task's (a 4-class model on the large version).
Out: output/<profile>/<blend name>/ (oof.parquet, test.parquet, cv.csv, blend.json; see esci.blend).
"""
from esci.blend import run_blend
from esci.cli import run_stage
from esci.config import member_config
from esci.prepare import load_examples, task_rows


def main(cfg):
    train, test = task_rows(load_examples(cfg), cfg.task)
    run_blend(cfg, train, test, [member_config(cfg, m) for m in cfg.members])


if __name__ == "__main__":
    run_stage("blend", __doc__, main)
