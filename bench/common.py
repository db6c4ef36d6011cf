"""What the bench commands share: train every fold of an experiment and score its OOF on its task's rows."""
from esci.members import load_member
from esci.prepare import load_examples, prepare, task_rows
from esci.tasks import task_metric
from esci.train import train_fold


def train_and_score(cfg) -> float:
    """Train every fold of the experiment (skipping finished ones) and return its CV metric over its task's rows."""
    prepare(cfg)
    for k in range(cfg.n_folds):
        train_fold(cfg.replace(fold=k), k)
    train, test = task_rows(load_examples(cfg), cfg.task)
    oof, _ = load_member(cfg, train, test)
    return task_metric(cfg.task, train.merge(oof, on="example_id", validate="one_to_one"))
