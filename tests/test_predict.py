"""The predictor: a fold exported as a self-contained folder gives, on new pairs, the outputs the fold wrote for
its test and OOF rows, from an ESCI folder or from a pairs file."""
import numpy as np
import pandas as pd
import pytest

from esci import EsciError
from esci.config import load_config
from esci.predict import export, main, predict, read_pairs
from esci.prepare import prepare, source_dir
from esci.train import train_fold


def test_exported_fold_predicts_its_test_rows(tmp_path):
    cfg = load_config("configs/cpu.py", "configs/t2_a.py",
                      overrides=[f"output_dir={tmp_path}", "data_dir=sample", "sample_queries=120", "model_dir=tiny",
                                 "max_train_queries=30", "epochs=1", "precision=fp32", "unit_match=True",
                                 "evals_per_epoch=2"])
    prepare(cfg)
    train_fold(cfg, 0)
    model = export(cfg.run_dir / "fold0", tmp_path / "model")
    assert {p.name for p in model.iterdir()} == {"encoder", "head.safetensors", "config.json", "vocab.json"}
    fold_test = pd.read_parquet(cfg.run_dir / "fold0" / "test.parquet")
    pairs = read_pairs(source_dir(cfg))
    got = predict(model, pairs[pairs.example_id.isin(fold_test.example_id)]).merge(fold_test, on="example_id")
    assert len(got) == len(fold_test)
    for col in ("p_E", "p_S", "p_C", "p_I", "score"):
        np.testing.assert_allclose(got[f"{col}_x"], got[f"{col}_y"], atol=1e-5)
    np.testing.assert_allclose(got.p_sub, got.p_S_x)
    # the OOF rows are the kept weights' outputs (read from the evaluation that kept them, not predicted again)
    oof = pd.read_parquet(cfg.run_dir / "fold0" / "oof.parquet")
    got = predict(model, pairs[pairs.example_id.isin(oof.example_id)]).merge(oof, on="example_id")
    assert len(got) == len(oof) > 0
    for col in ("p_E", "p_S", "p_C", "p_I", "score"):
        np.testing.assert_allclose(got[f"{col}_x"], got[f"{col}_y"], atol=1e-5)
    # a pairs file: fields may be missing (empty), HTML is cleaned as in prepare; the command line writes scores
    few = pairs.head(5)[["query", "product_locale", "title", "brand"]].assign(title=lambda d: "<b>" + d.title + "</b>")
    few.to_parquet(tmp_path / "pairs.parquet")
    main(["--model", str(model), "--input", str(tmp_path / "pairs.parquet"), "--output", str(tmp_path / "s.parquet")])
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert scores.example_id.tolist() == list(range(5)) and np.allclose(scores.filter(like="p_").iloc[:, :4].sum(axis=1), 1)
    with pytest.raises(SystemExit) as exit_:
        main(["--model", str(tmp_path / "nope"), "--input", str(tmp_path / "pairs.parquet"), "--output", "x"])
    assert exit_.value.code == 2
    with pytest.raises(EsciError, match="column 'query' is missing"):
        pd.DataFrame({"title": ["x"]}).to_parquet(tmp_path / "bad.parquet")
        read_pairs(tmp_path / "bad.parquet")
