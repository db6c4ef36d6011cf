# Every configuration key, its default and one line of documentation. Other files list only what they change;
# the loader rejects keys not defined here and values of another type.
cfg = dict(
    # --- run identity
    profile="base",          # the profile (cpu | gpu: configs/cpu.py, configs/gpu.py); results go to output/<profile>/
    name="base",             # experiment name (default: the experiment file's name; t2_a = task 2, field order a)
    task=2,                  # 1 ranking (nDCG), 2 E/S/C/I (micro-F1), 3 substitute (micro-F1): an experiment's
                             # checkpoint metric (on its validation rows of that task), a blend's task
    fold=0,                  # fold to train (its rows are validation); -1 = full fit on all training rows
    seed=42,                 # every RNG (folds, sampler, dropout, sample generator) derives from it
    train_seed=0,            # 0 = seed; else this experiment's training RNG (sampler, dropout, new layers); folds keep seed
    force=False,             # redo a result made from other inputs (config, data, code) instead of stopping
    # --- paths ("" = the environment variable, else the default in brackets)
    data_dir="",             # ESCI files [$DATA_DIR or input/]; "sample" = the embedded sample
    output_dir="",           # results [$OUTPUT_DIR or output/]
    model_dir="",            # local Hugging Face encoder [$MODEL_DIR or the packaged MiniLM]; "tiny" = random tiny BERT
                             # (an experiment file that sets it keeps it in a blend of other encoders' members)
    init_from="",            # pre-training run name under output/<profile>/ to start the encoder from ("" = none)
    # --- data
    sample_if_missing=False,  # the default input/ holds no ESCI file: use the embedded sample (never for other folders)
    sample_queries=300,      # queries in the generated sample (all locales)
    sample_noise=0.05,       # fraction of sample training labels flipped on purpose (recorded)
    n_folds=5,               # K of the query-grouped stratified folds
    rows="large",            # rows an experiment trains, validates and predicts: large | small | all (either version)
    aug_weight=0.3,          # sample weight of an experiment's rows outside its task's version (e.g. task 1, rows=large)
    max_train_queries=0,     # 0 = all; else train on the first N training queries by id (smoke tests, CPU budgets)
    max_test_rows=0,         # 0 = all; else predict only the first N test rows (smoke tests; submission invalid)
    exclude_from="",         # experiment whose label_issues.parquet lists example_ids dropped from training
    # --- input text
    fields=["title", "brand", "color", "bullets", "description"],  # product fields in input order
    max_len=256,             # tokens per (query, product) pair, longest-first truncation
    max_chars=0,             # product text cut to this many characters before tokenizing (0 = 6 * max_len)
    unk_warn=0.02,           # warn when more than this share of a locale's query or product tokens are the
                             # tokenizer's unknown token (an encoder that cannot read that script); 0 = never
    # --- model
    head="cls4",             # cls4 (E/S/C/I) | cls2 (substitute vs not) | reg (MSE on gains)
    use_units=True,          # multi-granular semantic units: char 3-gram bags of query / title+brand+color+bullets / description
    unit_match=False,        # also feed the head query*mid and query*description bag products and the share of the
                             # query's 3-grams found in each (lexical match; not in the paper)
    unit_dim=64,             # size of each 3-gram bag embedding
    ngram_buckets=524288,    # char 3-grams are hashed (stable, vectorized) into this many embedding rows
    use_ids=True,            # locale, brand and color ID embeddings (OOV -> 0)
    locale_dim=8,            # locale embedding size
    id_dim=128,              # brand and color embedding size
    id_min_count=2,          # brand/color values seen fewer times in training judgements map to 0
    head_dropout=0.1,        # dropout before each head Linear
    encoder_dropout=-1.0,    # the encoder's dropout (hidden and attention) in fine-tuning; below 0: its checkpoint's own
    # --- loss
    loss="ce",               # ce | poly1 (CE + poly_eps * (1 - p_true)); reg heads: MSE, or bce (BCE on the gains)
    poly_eps=1.0,            # Poly-1 epsilon
    # --- optimisation
    epochs=3,                # passes over the training folds
    max_train_examples=0,    # 0 = epochs as set; else at most this many training examples per fold-training: fewer
                             # epochs (at least 1) where the experiment has many rows, i.e. more data, fewer passes
    batch_size=32,           # examples per micro-batch
    eval_batch_size=128,     # examples per inference batch
    grad_accum=1,            # micro-batches per optimizer step
    lr=2e-5,                 # encoder learning rate (AdamW)
    head_lr=1e-3,            # learning rate of the head, 3-gram bags and ID embeddings
    weight_decay=0.01,       # AdamW weight decay (not on biases and LayerNorm)
    warmup_ratio=0.1,        # linear warmup share of the cosine schedule
    max_grad_norm=1.0,       # gradient clipping; 0 = off
    evals_per_epoch=1,       # validation passes per epoch; the best by task metric is kept
    max_steps=0,             # 0 = the epochs' steps; else stop after this many optimizer steps (smoke and scale runs)
    # --- fine-tuning tricks (paper Table 5)
    ema=False,               # exponential moving average of weights; evaluate and save with EMA weights
    ema_decay=0.999,         # EMA decay (warmed up as min(decay, (1+step)/(10+step)))
    fgm=False,               # adversarial perturbation of word embeddings
    fgm_eps=0.5,             # FGM step size eps * g / ||g||
    rdrop=False,             # R-Drop: symmetric KL (MSE for reg heads) between two dropout passes
    rdrop_alpha=0.5,         # weight of the R-Drop term (mean over the batch)
    mixup=False,             # embedding mixup with an in-batch permutation and soft targets
    mixup_alpha=0.2,         # Beta(alpha, alpha) mixing weight
    # --- speed
    precision="auto",        # auto (bf16 where GPU or CPU has it natively, else GPU fp16, CPU fp32) | fp32 | bf16 | fp16
    pad_multiple=32,         # pad batches to a multiple of this (tensor-core friendly); 1 = off
    bucket=True,             # length-bucketed training batches (shuffled buckets) and length-sorted inference
    compile=False,           # torch.compile the encoder
    threads=0,               # CPU threads for torch (0 = its default)
    # --- checkpoints
    save_every=500,          # optimizer steps between resumable checkpoints; 0 = only at the end
    log_every=50,            # optimizer steps between lines of train_log.jsonl (loss terms, learning rates, ex/s)
    tracker="",              # also send them to an Accelerate tracker: tensorboard | wandb | mlflow | ... (installed)
    # --- label cleaning (confident learning)
    clean_frac=0.04,         # share of training rows dropped as label issues
    # --- blending
    members=[],              # experiment names blended (task 1: classifiers and regressors)
    blend_steps=10,          # weight grid resolution per member (weights in multiples of 1/blend_steps)
    stack=False,             # LightGBM over members' OOF outputs + lexical + query-group features, out-of-fold on
                             # the same folds; its predictions replace the weighted blend's (esci.stack)
    stack_params={},         # LightGBM parameters over esci.stack.DEFAULTS (e.g. num_boost_round, num_leaves; bags:
                             # models of other seeds averaged per fold)
    bi_encoders=[],          # sentence encoders whose query-product cosines join the stack's features ("" the packaged
                             # MiniLM, else a local folder; each text embedded once into a store: esci.dense)
    bi_fields=["title", "side", "desc"],  # the product texts they embed (esci.dense.FIELDS)
    bi_max_len=256,          # tokens per text they embed
    bi_batch=64,             # texts per forward pass while embedding
    # --- multi-task pre-training (Figure 1)
    pt_epochs=1,             # passes over the catalog corpora
    pt_batch_size=32,        # examples per pre-training batch
    pt_lr=5e-5,              # pre-training learning rate
    pt_mlm=True,             # masked LM (15%, 80/10/10) on product text blocks
    pt_p2q=True,             # Product2Query: fake query spans vs permuted within locale
    pt_brand=True,           # Product2Brand classification
    pt_color=True,           # Product2Color classification
    pt_simcse=True,          # SimCSE contrastive (two dropout passes, in-batch negatives)
    pt_temperature=0.05,     # SimCSE temperature
    pt_weights=dict(mlm=1.0, p2q=1.0, brand=1.0, color=1.0, simcse=1.0),  # loss weight per task (missing: 1.0)
    pt_max_len=256,          # tokens per pre-training example (MLM block, Product2Query pair, product text)
    pt_head_lr=5e-4,         # learning rate of the pre-training heads
    pt_grad_accum=1,         # micro-batches per optimizer step
    pt_ema=False,            # EMA of the pre-trained weights (kept apart from fine-tuning's ema)
    pt_ema_decay=0.999,      # its decay
    pt_span_mean=[4.0, 4.0, 8.0],  # Poisson mean of fake-query span length (characters) for us, es, jp
    pt_holdout=0.05,         # share of products held out for MLM loss and accuracies
    pt_mask_prob=0.15,       # share of MLM tokens that are targets (80% [MASK], 10% random, 10% kept)
    pt_max_products=0,       # 0 = the whole catalog; else a seeded subset of this many products
    pt_max_steps=0,          # 0 = the epochs' steps; else stop pre-training after this many optimizer steps
)
