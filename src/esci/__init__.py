"""ESCI (Amazon KDD Cup 2022 Shopping Queries) solution package.

Stages in `src/NN_*.py` import from here; everything a stage needs to read, train, score or write lives in one
module per concern: config, data, sample, folds, features, metrics, submission, model, train, pretrain, cleaning,
blend. `EsciError` is every error a user can fix: the stages print its one line (file, column or key, and the fix)
and exit 2, without a traceback.
"""

LABELS = ("E", "S", "C", "I")
LABEL_NAMES = {"E": "exact", "S": "substitute", "C": "complement", "I": "irrelevant"}
GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
LOCALES = ("us", "es", "jp")


class EsciError(ValueError):
    """Bad input or configuration: the message is one line naming the file, column or key, and the fix."""
