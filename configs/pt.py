# Multi-task pre-training on the catalog, every task on (Figure 1); fine-tuning starts from it via init_from="pt".
cfg = dict()
