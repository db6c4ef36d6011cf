import re

import pandas as pd
import pytest

from esci.data import EXAMPLES, PRODUCTS, DataError, clean_text, load_esci


def write(tmp_path, ex, pr):
    ex.to_parquet(tmp_path / EXAMPLES, index=False)
    pr.to_parquet(tmp_path / PRODUCTS, index=False)
    return tmp_path


def expect_error(tmp_path, ex, pr, *words):
    with pytest.raises(DataError) as err:
        load_esci(write(tmp_path, ex, pr))
    msg = str(err.value)
    assert "\n" not in msg and "fix:" in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_clean_text_strips_html_and_never_leaks_missing():
    s = pd.Series(["<p>Hello&amp;  <b>world</b></p><br/>x", None, float("nan"), "  a \n b  ", "None"])
    assert clean_text(s).tolist() == ["Hello& world x", "", "", "a b", "None"]


def test_loaded_sample_has_clean_text(esci):
    examples, products = esci
    for col in ("product_title", "product_description", "product_bullet_point", "product_brand", "product_color"):
        assert products[col].map(type).eq(str).all()
        assert not products[col].str.contains(r"<[a-z/]|&amp;|^nan$|^None$", regex=True).any()
    assert products.product_description.eq("").any()


def test_every_example_joins_its_own_locales_product(esci):
    examples, products = esci
    joined = products.iloc[examples.pidx.to_numpy()]
    assert (joined.product_id.to_numpy() == examples.product_id.to_numpy()).all()
    assert (joined.product_locale.to_numpy() == examples.product_locale.to_numpy()).all()


def test_prepared_task_rows_share_one_fold_per_query(tmp_path, sample_dir):
    from esci.config import load_config
    from esci.prepare import experiment_rows, load_examples, prepare, task_rows
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}"])
    prepare(cfg)
    ex = load_examples(cfg)
    assert ex.fold.eq(-1).eq(ex.split.eq("test")).all() and ex.esci_label.isna().eq(ex.split.eq("test")).all()
    t1, t1_test = task_rows(ex, 1)
    t2, t2_test = task_rows(ex, 2)
    assert len(t1) + len(t1_test) == int(ex.small_version.sum()) and "esci_label" not in t2_test
    assert len(t2) + len(t2_test) == int(ex.large_version.sum())
    folds = pd.concat([t1, t2]).groupby("query_id").fold.nunique()
    assert folds.max() == 1 and t1.query_id.isin(t2.query_id).all()
    # task 1 trained on the large version: rows outside the small version carry aug_weight
    fit, _ = experiment_rows(cfg.replace(task=1, rows="large", aug_weight=0.5), ex)
    assert len(fit) == len(t2) and set(fit.weight) == {0.5, 1.0}
    assert (fit.weight.eq(1.0) == fit.small_version.eq(1)).all()
    # the test labels are kept apart
    labels = pd.read_parquet(cfg.data_root / "test_labels.parquet")
    assert sorted(labels.example_id) == sorted(ex.example_id[ex.split.eq("test")])


def test_a_training_budget_keeps_every_test_row_and_says_what_it_left_out(tmp_path, sample_dir, caplog):
    from esci.config import load_config
    from esci.prepare import load_examples, prepare
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}"])
    prepare(cfg)
    full = load_examples(cfg.replace(max_train_queries=0))
    train = full[full.split.eq("train")]
    assert cfg.max_train_queries >= train.query_id.nunique()   # the CPU profile's budget keeps the whole sample
    with caplog.at_level("WARNING", logger="esci"):
        assert load_examples(cfg).equals(full) and "max_train_queries" not in caplog.text
        cut = load_examples(cfg.replace(max_train_queries=50))
        load_examples(cfg.replace(max_train_queries=50))   # a stage loads its rows several times; told once
    kept = cut[cut.split.eq("train")].query_id.unique()
    assert sorted(kept) == sorted(train.query_id.unique())[:50]
    assert cut.split.eq("test").sum() == full.split.eq("test").sum()
    n = train.query_id.nunique()
    assert caplog.text.count(f"the first 50 of {n} training queries") == 1


def test_prepared_tables_follow_file_content_not_file_times(tmp_path, sample_dir):
    """A copied or touched file with the same bytes is the same input; same size, other bytes is not."""
    import os
    import shutil
    from esci import EsciError
    from esci.config import load_config
    from esci.prepare import check_prepared, prepare
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}/out", f"data_dir={data}"])
    prepare(cfg)
    examples = data / EXAMPLES
    os.utime(examples, ns=(1, 1))
    check_prepared(cfg)
    blob = bytearray(examples.read_bytes())
    blob[len(blob) // 2] ^= 1
    examples.write_bytes(bytes(blob))
    with pytest.raises(EsciError, match="prepared from other inputs .*files changed.*fix:"):
        check_prepared(cfg)


@pytest.mark.parametrize("damage", ["truncate", "tail"])
def test_a_damaged_prepared_table_is_refused_by_readers_and_made_again_by_prepare(tmp_path, sample_dir, damage):
    import shutil
    from esci import EsciError
    from esci.config import load_config
    from esci.prepare import check_prepared, prepare
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}/out", f"data_dir={data}"])
    prepare(cfg)
    table = cfg.data_root / "examples.parquet"
    good, frame = table.read_bytes(), pd.read_parquet(table)
    table.write_bytes(good[: len(good) // 2] if damage == "truncate" else good[:-8] + b"\0" * 8)
    with pytest.raises(EsciError, match=r"prepared tables damaged \(examples.parquet .*\); fix: run src/01_prepare"):
        check_prepared(cfg)
    prepare(cfg)
    check_prepared(cfg)
    assert pd.read_parquet(table).equals(frame)


def test_two_ranks_preparing_at_once_make_the_tables_once(tmp_path, monkeypatch):
    """The ranks of a distributed launch all call prepare: one makes the sample and the tables, the others wait and
    find them complete (they used to read the sample while another rank was writing it)."""
    import threading
    import time
    from esci import prepare as stage
    from esci.config import load_config
    made, errors, write_sample = [], [], stage.write_sample

    def slow_write_sample(*args):
        made.append(1)
        time.sleep(0.5)  # the other rank looks for the files meanwhile
        return write_sample(*args)

    def rank():
        try:
            stage.prepare(cfg)
        except Exception as e:  # noqa: BLE001 (reported by the assertion below)
            errors.append(e)

    monkeypatch.setattr(stage, "write_sample", slow_write_sample)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", "data_dir=sample",
                                                      "sample_queries=60"])
    ranks = [threading.Thread(target=rank) for _ in range(2)]
    for t in ranks:
        t.start()
    for t in ranks:
        t.join()
    assert not errors and len(made) == 1
    stage.check_prepared(cfg)


@pytest.mark.parametrize("change,words", [("text", "two texts"), ("locale", "two locales"),
                                          ("split", "both splits")])
def test_query_id_with_two_texts_locales_or_splits(tmp_path, raw, change, words):
    ex, pr = raw
    q = ex.query_id.iat[0]
    rows = ex.index[ex.query_id.eq(q)]
    if change == "text":
        ex.loc[rows[-1], "query"] = "another text"
    elif change == "locale":
        other = pr[pr.product_locale.ne(ex.product_locale.iat[0])].iloc[0]
        ex.loc[rows[-1], ["product_locale", "product_id"]] = [other.product_locale, other.product_id]
    else:
        ex.loc[rows[-1], "split"] = "test" if ex.split.iat[0] == "train" else "train"
    expect_error(tmp_path, ex, pr, f"query_id {q}", words)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(EXAMPLES) + ".*not found.*fix"):
        load_esci(tmp_path)


def test_empty_file(tmp_path, raw):
    ex, pr = raw
    write(tmp_path, ex, pr)
    (tmp_path / EXAMPLES).write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_esci(tmp_path)


def test_zero_row_file(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex.iloc[:0], pr, "no rows")


def test_missing_column(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex.drop(columns=["query_id"]), pr, EXAMPLES, "'query_id'", "missing")


def test_unknown_label(tmp_path, raw):
    ex, pr = raw
    ex.loc[3, "esci_label"] = "X"
    expect_error(tmp_path, ex, pr, "'esci_label'", "'X'", "row 3")


def test_duplicate_example_id(tmp_path, raw):
    ex, pr = raw
    ex.loc[5, "example_id"] = ex.loc[4, "example_id"]
    expect_error(tmp_path, ex, pr, "'example_id'", "row 5")


def test_product_not_in_catalog(tmp_path, raw):
    ex, pr = raw
    pr = pr[~((pr.product_id == ex.product_id[7]) & (pr.product_locale == ex.product_locale[7]))]
    expect_error(tmp_path, ex, pr, "missing from", PRODUCTS, str(ex.example_id[7]))


def test_empty_query(tmp_path, raw):
    ex, pr = raw
    ex.loc[2, "query"] = "  "
    expect_error(tmp_path, ex, pr, "'query'", "row 2")


def test_wrong_dtype(tmp_path, raw):
    ex, pr = raw
    ex["query_id"] = ex.query_id.astype(str)
    expect_error(tmp_path, ex, pr, "'query_id'", "expected integers")


def test_duplicate_product_row(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex, pd.concat([pr, pr.iloc[[0]]]), PRODUCTS, "repeats")


def test_same_asin_in_two_locales_joins_by_locale(esci):
    examples, products = esci
    shared = products[products.product_id.duplicated(keep=False)]
    assert len(shared), "the sample reuses ASINs across locales"
    reused = examples[examples.product_id.isin(shared.product_id)]
    assert len(reused) and (products.product_locale.iloc[reused.pidx.to_numpy()].to_numpy()
                            == reused.product_locale.to_numpy()).all()


def test_odd_but_usable_data_gets_counted_warnings(tmp_path, raw, caplog):
    ex, pr = raw
    rows = ex.index[ex.query_id.eq(ex.query_id[ex.split.eq("test")].iat[0])]  # one test query moves to "de"
    de = pr.iloc[:len(rows)].assign(product_locale="de")
    ex.loc[rows, "product_locale"], ex.loc[rows, "product_id"] = "de", de.product_id.to_numpy()
    q = ex.query_id.iat[0]
    ex.loc[ex.query_id.eq(q), "query"] = ex.loc[ex.query_id.eq(q), "query"] + "\x07"
    with caplog.at_level("WARNING", logger="esci"):
        load_esci(write(tmp_path, ex, pd.concat([pr, de])))
    text = caplog.text
    assert f"{len(rows)} examples in locales outside us/es/jp" in text
    assert "locales ['de'] have test rows but no training" in text
    assert f"{int(ex.query_id.eq(q).sum())} queries hold control characters" in text


def test_no_test_rows_warns_and_no_training_rows_fails(tmp_path, raw, caplog):
    ex, pr = raw
    with caplog.at_level("WARNING", logger="esci"):
        load_esci(write(tmp_path, ex[ex.split.eq("train")], pr))
    assert "no test rows" in caplog.text
    expect_error(tmp_path, ex[ex.split.eq("test")], pr, "no training rows")


def test_a_task_without_rows_of_its_version_fails_in_one_line(tmp_path, raw):
    from esci import EsciError
    from esci.config import load_config
    from esci.prepare import experiment_rows, load_examples, prepare, task_rows
    ex, pr = raw
    ex["small_version"] = 0
    data = write(tmp_path / "d", ex, pr) if (tmp_path / "d").mkdir() is None else None
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={data}"])
    prepare(cfg)
    examples = load_examples(cfg)
    with pytest.raises(EsciError, match="no training rows with small_version = 1 .task 1.; fix"):
        task_rows(examples, 1)
    with pytest.raises(EsciError, match="rows=small"):
        experiment_rows(cfg.replace(rows="small"), examples)
    assert len(experiment_rows(cfg, examples)[0]) == int(ex.split.eq("train").sum())
