# Profile: the embedded sample, the packaged MiniLM, CPU. run_task2.sh finishes in minutes on 2 cores.
cfg = dict(
    profile="sample",
    sample_if_missing=True,
    n_folds=3,
    max_len=64,
    epochs=2,
    batch_size=16,
    lr=1e-4,
    head_lr=2e-3,
    ngram_min_count=1,
    id_min_count=1,
    pad_multiple=8,
    save_every=100,
    ema=True,
    ema_decay=0.99,
)
