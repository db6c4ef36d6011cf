import numpy as np
import pandas as pd
import pytest

from esci.submission import SubmissionError, validate, write_task1, write_task2, write_task3


@pytest.fixture
def test_table(esci):
    examples, _ = esci
    return examples[examples.large_version.eq(1) & examples.split.eq("test")].reset_index(drop=True)


def preds(test):
    return test.assign(score=test.example_id % 7, esci_label="E", substitute=test.example_id % 2 == 0)


def test_writers_round_trip(tmp_path, test_table):
    p = preds(test_table)
    for task, writer in ((1, write_task1), (2, write_task2), (3, write_task3)):
        path = tmp_path / f"t{task}.csv"
        writer(p, path)
        assert validate(task, path, test_table)["rows"] == len(test_table)
    ranked = pd.read_csv(tmp_path / "t1.csv")
    first_q = ranked.query_id.iat[0]
    order = ranked[ranked.query_id == first_q].product_id.tolist()
    scores = p.set_index(["query_id", "product_id"]).score
    assert [scores[(first_q, pid)] for pid in order] == sorted(scores.loc[first_q], reverse=True)


@pytest.mark.parametrize("task", [1, 2, 3])
def test_missing_duplicated_unknown(tmp_path, test_table, task):
    writer = {1: write_task1, 2: write_task2, 3: write_task3}[task]
    p = preds(test_table)
    cases = {"missing": p.iloc[1:], "duplicated": pd.concat([p, p.iloc[[0]]]),
             "not in the test set": pd.concat([p, p.iloc[[0]].assign(example_id=-1, product_id="B0NOPE")])}
    for word, bad in cases.items():
        writer(bad, tmp_path / "s.csv")
        with pytest.raises(SubmissionError, match=word):
            validate(task, tmp_path / "s.csv", test_table)


def test_bad_label_value_and_columns(tmp_path, test_table):
    path = tmp_path / "s.csv"
    pd.DataFrame({"example_id": test_table.example_id, "esci_label": "E"}).to_csv(path, index=False)
    with pytest.raises(SubmissionError, match="outside"):
        validate(2, path, test_table)
    pd.DataFrame({"example_id": test_table.example_id}).to_csv(path, index=False)
    with pytest.raises(SubmissionError, match="columns"):
        validate(3, path, test_table)


@pytest.mark.parametrize("text,words", [("", "file is empty"), ("example_id,esci_label\n", "missing"),
                                        ("example_id,esci_label\n14780.0,exact\n", "not integer ids.*14780.0"),
                                        ("\x00\x01\xff\xfe", "not a readable CSV|columns")])
def test_broken_files_get_one_line(tmp_path, test_table, text, words):
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SubmissionError, match=words) as err:
        validate(2, path, test_table)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)


def test_one_bad_id_is_reported_as_one(tmp_path, test_table):
    p = preds(test_table)
    write_task2(p, tmp_path / "s.csv")
    rows = (tmp_path / "s.csv").read_text().splitlines()
    rows[5] = "99999999," + rows[5].split(",")[1]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(SubmissionError, match=r"1 \(first: 99999999 at row 4\) example_ids not in the test set"):
        validate(2, tmp_path / "s.csv", test_table)


def test_task3_label_fix_names_its_own_mapping(tmp_path, test_table):
    path = tmp_path / "s.csv"
    pd.DataFrame({"example_id": test_table.example_id, "substitute_label": "S"}).to_csv(path, index=False)
    with pytest.raises(SubmissionError, match="fix: use substitute or no_substitute"):
        validate(3, path, test_table)


def test_score_reads_the_files_ranking_and_labels(tmp_path, esci, test_table):
    from esci.metrics import ndcg_report
    from esci.submission import score
    examples, _ = esci
    rng = np.random.default_rng(0)
    labelled = test_table.assign(esci_label=rng.choice(list("ESCI"), len(test_table)))
    pred = labelled.assign(score=rng.random(len(labelled)))
    write_task1(pred, tmp_path / "t1.csv")
    assert score(1, tmp_path / "t1.csv", labelled) == pytest.approx(ndcg_report(pred))
    guess = labelled.assign(esci_label=np.where(rng.random(len(labelled)) < 0.7, labelled.esci_label, "E"))
    write_task2(guess, tmp_path / "t2.csv")
    got = score(2, tmp_path / "t2.csv", labelled)
    assert got["micro_f1"] == pytest.approx((guess.esci_label == labelled.esci_label).mean())
    assert set(got) == {"micro_f1"} | {f"micro_f1_{loc}" for loc in labelled.product_locale.unique()}
    write_task3(labelled.assign(substitute=labelled.esci_label.eq("S")), tmp_path / "t3.csv")
    assert score(3, tmp_path / "t3.csv", labelled)["micro_f1"] == 1.0


def test_only_the_scoring_stage_reads_the_test_labels():
    """prepare writes test_labels.parquet (stage 1's docstring names it as an output); only evaluation reads it
    (submission.labelled_test, for stage 7 and the bench tables), so nothing that trains, selects or blends can."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    naming = sorted(str(p.relative_to(root)) for p in [*root.glob("src/**/*.py"), *root.glob("bench/*.py")]
                    if "test_labels" in p.read_text())
    assert naming == ["src/01_prepare.py", "src/07_score.py", "src/esci/prepare.py", "src/esci/submission.py"]
    readers = sorted(str(p.relative_to(root)) for p in [*root.glob("src/**/*.py"), *root.glob("bench/*.py")]
                     if "labelled_test" in p.read_text())
    assert readers == ["bench/baselines.py", "bench/common.py", "src/07_score.py", "src/esci/submission.py"]
    prepare = (root / "src/esci/prepare.py").read_text()
    written = 'write_parquet(labels.reset_index(drop=True), out / "test_labels.parquet")'
    assert prepare.count("test_labels") == 3 and written in prepare  # the docstring, the write, the count


@pytest.mark.parametrize("task", [1, 2, 3])
def test_a_file_is_checked_on_its_own_in_one_line(tmp_path, sample_dir, esci, task):
    import subprocess
    import sys
    examples, _ = esci
    version = "small_version" if task == 1 else "large_version"
    test = examples[examples[version].eq(1) & examples.split.eq("test")].reset_index(drop=True)
    writer = {1: write_task1, 2: write_task2, 3: write_task3}[task]
    writer(preds(test), tmp_path / "s.csv")

    def check(*args):
        return subprocess.run([sys.executable, "-m", "esci.submission", *map(str, args)], capture_output=True,
                              text=True)
    ok = check(task, tmp_path / "s.csv", sample_dir)
    assert ok.returncode == 0 and ok.stdout.count("\n") == 1, ok.stderr
    assert f"a valid task {task} submission ({len(test)} rows)" in ok.stdout and "on the labelled test split" in ok.stdout
    writer(preds(test).iloc[1:], tmp_path / "s.csv")
    bad = check(task, tmp_path / "s.csv", sample_dir)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing" in bad.stderr and not bad.stdout
    assert check(4, tmp_path / "s.csv", sample_dir).returncode == 2
    assert "usage" in check("--help").stdout
