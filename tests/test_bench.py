"""The bench commands run end to end on the tiny encoder and write the tables they promise."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["model_dir=tiny", "sample_queries=120", "n_folds=2", "max_train_queries=40", "max_test_rows=20", "epochs=1",
         "unit_match=True", "use_ids=False", "lr=5e-4", "bi_encoders=[]"]


def bench(script, tmp_path, *args):
    res = subprocess.run([sys.executable, f"bench/{script}", *args, f"output_dir={tmp_path}",
                          "data_dir=sample"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_table5_trick_ladder(tmp_path):
    out = bench("table5_tricks.py", tmp_path, *QUICK)
    table = pd.read_csv(tmp_path / "cpu/tiny/tables/table5_tricks.csv")
    assert table.rung.tolist() == ["base", "+ema", "+fgm", "+rdrop", "+mixup"] and "+mixup" in out
    assert table.mixup.tolist() == [False] * 4 + [True] and table.ema.tolist() == [False] + [True] * 4
    assert table.micro_f1.between(0.3, 1).all()
    assert table[["task1_ndcg", "task1_test", "task2_test", "task3_micro_f1", "task3_test"]].stack().between(0.2, 1).all()
    assert (table.task2_micro_f1 == table.micro_f1).all()
    for rung in ("base", "mixup"):  # every rung trained all folds
        assert len(list((tmp_path / f"cpu/tiny/t2_a_tricks_{rung}").glob("fold*/metrics.json"))) == 2


def test_table3_pretrain_ladder(tmp_path):
    bench("table3_pretrain.py", tmp_path, *QUICK, "pt_max_products=120", "pt_lr=1e-3")
    table = pd.read_csv(tmp_path / "cpu/tiny/tables/table3_pretrain.csv")
    assert table.rung.tolist() == ["none", "mlm", "+p2q", "+brand_color", "+contrastive"]
    assert table.mlm_loss.isna().tolist() == [True] + [False] * 4
    assert (table.mlm_loss[1:] < table.mlm_loss_start[1:]).all()
    assert table.p2q_acc.isna().tolist() == [True, True, False, False, False]
    assert table.task1_test.between(0.5, 1).all() and table.pt_steps.isna().tolist() == [True] + [False] * 4
    rows = pd.read_json(tmp_path / "cpu/tiny/table3_pt_contrastive/metrics.json", typ="series")["rows"]
    assert set(rows) == {"mlm", "p2q", "attr", "simcse"}


def test_throughput_prints_ratios():
    res = subprocess.run([sys.executable, "bench/throughput.py", "--model", "tiny", "--train-rows", "64",
                          "--infer-rows", "128", "--batch", "16"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    ratio = [line for line in res.stdout.splitlines() if line.startswith("ratio")]
    assert ratio and "train" in ratio[0] and "infer" in ratio[0]
    assert float(ratio[0].split("train ")[1].split("x")[0]) > 0


def test_baselines_beat_trivial(tmp_path, sample_dir):
    from esci import baselines
    from esci.config import load_config
    from esci.metrics import ndcg
    from esci.prepare import load_examples, prepare, task_rows, with_text
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}"])
    prepare(cfg)
    examples = load_examples(cfg)
    t2 = with_text(cfg, task_rows(examples, 2)[0])
    assert baselines.tfidf_lr(2, t2) > baselines.majority(2, t2) + 0.02
    t1 = with_text(cfg, task_rows(examples, 1)[0])
    assert baselines.tfidf_cosine(t1) > ndcg(t1.assign(score=0.0)) + 0.05


def test_table6_cleaning_with_and_without(tmp_path):
    out = bench("table6_cleaning.py", tmp_path, *QUICK, "clean_frac=0.1")
    table = pd.read_csv(tmp_path / "cpu/tiny/tables/table6_cleaning.csv")
    assert table.task.tolist() == [1, 2, 3] and "change" in out
    assert (table.change == table["with"] - table.without).all() and table.dropped.gt(0).all()
    scores = table[["without", "with", "test_without", "test_with"]]   # the sample's test split has labels
    assert scores.apply(lambda c: c.between(0.2, 1)).all().all()
    assert (table.test_change == table.test_with - table.test_without).all()
    issues = pd.read_parquet(tmp_path / "cpu/tiny/t2_a/label_issues.parquet")
    assert len(issues) == table.dropped[0]
    assert len(list((tmp_path / "cpu/tiny/t2_a_clean").glob("fold*/metrics.json"))) == 2


def test_task1_peers_scored_by_cv_and_on_test(tmp_path):
    import json
    from esci.config import load_config
    from esci.prepare import load_examples, prepare, task_rows
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", "data_dir=sample", *QUICK])
    prepare(cfg)
    train, test = task_rows(load_examples(cfg), 1)
    for name, ids in (("blend_same", train.example_id), ("blend_other", train.example_id[:-5])):
        run = tmp_path / "cpu/tiny" / name  # a finished blend, over these rows or over others
        run.mkdir(parents=True)
        pd.DataFrame({"example_id": ids, "score": 0.0}).to_parquet(run / "oof.parquet")
        pd.DataFrame({"example_id": test.example_id, "score": 0.0}).to_parquet(run / "test.parquet")
        (run / "blend.json").write_text(json.dumps({"task": 1, "threshold": 0.5, "ndcg": 0.5}))
    out = bench("baselines.py", tmp_path, "configs/cpu.py", "configs/blend_t1.py", *QUICK)
    assert "blend_other: left out" in out
    table = pd.read_csv(tmp_path / "cpu/tiny/tables/baselines_task1.csv").set_index("model")
    peers = ["tfidf_char", "tfidf_word", "bm25", "biencoder_zero_shot", "zero_shot_minilm_title_desc",
             "zero_shot_tiny_title_desc", "lightgbm_lexical_biencoder"]
    assert table.loc[peers, "kind"].eq("peer").all()
    assert table.loc[peers, ["cv", "test"]].stack().between(0.5, 1).all()  # the sample's test split is labelled
    assert table.loc["tfidf_char", "cv"] != table.loc["bm25", "cv"]
    assert table.loc["blend_same", "kind"] == "blend" and "blend_other" not in table.index


def test_every_bench_command_answers_help():
    commands = [p for p in sorted((ROOT / "bench").iterdir())
                if p.suffix in (".py", ".sh") and p.stem not in ("common", "legacy_featurize", "legacy_pretrain_corpora")]
    assert len(commands) >= 9
    for path in commands:
        cmd = ["bash" if path.suffix == ".sh" else sys.executable, str(path), "--help"]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"})
        assert res.returncode == 0 and len(res.stdout.splitlines()) >= 3, (path.name, res.stderr[-1000:])
        assert "Traceback" not in res.stderr and "sage" in res.stdout, path.name
    assert not (ROOT / "--help").exists()


def test_faults_results_section_is_replaced_in_place(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import faults
    (tmp_path / "bench").mkdir()
    results = tmp_path / "bench" / "RESULTS.md"
    results.write_text("# before\n\n<!-- faults -->\nold\n<!-- /faults -->\n\n## after\n")
    monkeypatch.setattr(faults, "ROOT", tmp_path)
    rows = [{"fault": "kill", "stage": "train t2_a fold=0", "at_s": 1.5, "last log line": "x", "outcome": "identical"},
            {"fault": "kill", "stage": "train t2_a fold=1", "at_s": 2.5, "last log line": "y", "outcome": "identical"},
            {"fault": "damaged file", "stage": "OOF table | truncated", "at_s": "", "outcome": "exit 2, one line",
             "last log line": f"blend: error: {tmp_path}/w/case/cpu/oof.parquet: damaged (x); fix: delete"}]
    faults.write_results(rows, "faults: kills=2", ["--results"], 3.0, tmp_path / "w")
    text = results.read_text()
    assert text.startswith("# before") and text.endswith("## after\n") and "old" not in text
    assert "| train | 2 | 1.5, 2.5 | identical |" in text
    assert "OOF table \\| truncated" in text and "error: OUTPUT_DIR/cpu/oof.parquet" in text and str(tmp_path) not in text
