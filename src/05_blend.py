"""Stage 5: blend several experiments' OOF predictions; weights (and task 3's threshold) tuned on OOF.

Usage: python src/05_blend.py configs/sample.py configs/blend_t2.py
Each member name is an experiment config, configs/<member>.py, read over configs/<profile>.py; a member of
another task serves when its head does and its rows cover this task's (a 4-class model on the large version).
Out: output/<profile>/<blend name>/ (see esci.blend).
"""
from esci.blend import run_blend
from esci.config import from_argv, member_config
from esci.log import setup
from esci.prepare import load_examples, task_rows

if __name__ == "__main__":
    setup("blend")
    cfg = from_argv()
    members = [member_config(cfg, m) for m in cfg.members]
    train, test = task_rows(load_examples(cfg), cfg.task)
    run_blend(cfg, train, test, members)
