"""Blending: the weight search and the threshold on hand-made cases, and members shared across tasks (a 4-class
experiment over the large version serves task 1 on exactly task 1's rows, and task 3 through p_S)."""
import numpy as np
import pandas as pd
import pytest

from esci.blend import Scorer, best_threshold, run_blend, select_weights
from esci.config import load_config
from esci.io import write_parquet
from esci.prepare import experiment_rows, load_examples, prepare, task_rows
from esci.provenance import fold_fingerprint, record


def test_threshold_maximizes_accuracy():
    truth = np.array([True, True, False, False, False])
    p = np.array([0.9, 0.62, 0.6, 0.3, 0.1])
    t, acc = best_threshold(truth, p)
    assert 0.6 <= t < 0.62 and acc == 1.0
    t, acc = best_threshold(np.array([False, False]), np.array([0.9, 0.5]))
    assert acc == 1.0 and t == 0.9  # the lowest threshold that keeps 0.9 out


def test_weights_pick_the_informative_member_and_mix_complementary_ones():
    labelled = pd.DataFrame({"esci_label": list("ESCIESCIES")})
    onehot = np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]
    noise = np.full_like(onehot, 0.25) + np.random.default_rng(0).normal(0, 0.01, onehot.shape)
    w, metric, _ = select_weights([noise, onehot], Scorer(2, labelled), 10)
    assert w[1] == 1.0 and metric == 1.0
    # each member is right on one half only, with a margin the other half can overturn
    half = np.arange(10) < 5
    a = np.where(half[:, None], onehot * 0.9 + 0.025, 0.25 + 0.02 * np.eye(4)[(np.arange(10) + 1) % 4])
    b = np.where(~half[:, None], onehot * 0.9 + 0.025, 0.25 + 0.02 * np.eye(4)[(np.arange(10) + 1) % 4])
    w, metric, _ = select_weights([a, b], Scorer(2, labelled), 10)
    assert metric == 1.0 and 0 < w[0] < 1 and w.sum() == pytest.approx(1.0)
    assert Scorer(2, labelled)(a)[0] == 0.5


def fake_member(cfg, name, rows, test, head="cls4", seed=0):
    rng = np.random.default_rng(seed)
    mcfg = cfg.replace(name=name, head=head, task=2)
    for k in range(cfg.n_folds):
        for part, df in (("oof", rows[rows.fold == k]), ("test", test)):
            p = rng.dirichlet([1, 1, 1, 1], len(df))
            out = pd.DataFrame(p, columns=["p_E", "p_S", "p_C", "p_I"]).assign(example_id=df.example_id.to_numpy())
            out["score"] = p @ np.array([1.0, 0.1, 0.01, 0.0])
            write_parquet(out, mcfg.run_dir / f"fold{k}" / f"{part}.parquet")
        record(mcfg.run_dir / f"fold{k}", fold_fingerprint(mcfg))
        (mcfg.run_dir / f"fold{k}" / "metrics.json").write_text("{}")
    return mcfg


def test_a_task2_member_serves_task1_and_task3_on_their_rows(tmp_path, sample_dir):
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", f"data_dir={sample_dir}"])
    prepare(cfg)
    examples = load_examples(cfg)
    large, large_test = experiment_rows(cfg, examples)
    members = [fake_member(cfg, f"m{i}", large, large_test, seed=i) for i in range(2)]
    t1, t1_test = task_rows(examples, 1)
    assert len(t1) < len(large)
    blend = run_blend(cfg.replace(name="b1", task=1, members=["m0", "m1"]), t1, t1_test, members)
    oof = pd.read_parquet(tmp_path / "cpu/minilm/b1/oof.parquet")
    assert sorted(oof.example_id) == sorted(t1.example_id) and list(oof.columns) == ["score", "example_id"]
    assert sorted(pd.read_parquet(tmp_path / "cpu/minilm/b1/test.parquet").example_id) == sorted(t1_test.example_id)
    assert 0 < blend["ndcg"] <= 1
    t3, t3_test = task_rows(examples, 3)
    run_blend(cfg.replace(name="b3", task=3, members=["m0"]), t3, t3_test, members[:1])
    m0 = pd.concat(pd.read_parquet(p) for p in (tmp_path / "cpu/minilm/m0").glob("fold*/oof.parquet"))
    b3 = pd.read_parquet(tmp_path / "cpu/minilm/b3/oof.parquet").merge(m0, on="example_id")
    np.testing.assert_allclose(b3.p_sub, b3.p_S)
    # a member whose rows miss the task's rows is refused, naming the fix
    small = fake_member(cfg, "small", t1, t1_test)
    with pytest.raises(ValueError, match="missing; fix: use a member whose rows cover"):
        run_blend(cfg.replace(name="b2", task=2, members=["small"]), *task_rows(examples, 2), [small])
    with pytest.raises(ValueError, match="cannot serve task 2"):
        run_blend(cfg.replace(name="b2", task=2, members=["m0"]), *task_rows(examples, 2),
                  [members[0].replace(head="reg")])


def test_a_blend_stacks_members_fine_tuned_from_other_encoders(tmp_path, sample_dir, monkeypatch):
    """A member file that sets model_dir is read from that encoder's folder of runs, under its own settings, beside
    the blend's encoder's members; the others take the blend's model_dir."""
    import shutil

    from esci import config, explore
    from esci.config import member_config
    configs = tmp_path / "configs"
    shutil.copytree(config.CONFIG_DIR, configs)
    (configs / "t2_big.py").write_text('parent = "t2_a"\ncfg = dict(model_dir="/models/big-encoder", lr=3e-5)\n')
    monkeypatch.setattr(config, "CONFIG_DIR", configs)
    out = tmp_path / "out"
    cfg = load_config(configs / "cpu.py", configs / "blend_t1.py",
                      overrides=[f"output_dir={out}", f"data_dir={sample_dir}", "members=['t2_a','t2_big']",
                                 "bi_encoders=[]"])
    own, big = member_config(cfg, "t2_a"), member_config(cfg, "t2_big")
    assert own.run_dir == out / "cpu/minilm/t2_a" and own.model_dir == cfg.model_dir
    assert big.run_dir == out / "cpu/big-encoder/t2_big" and big.lr == 3e-5 and big.head == "cls4"
    prepare(cfg)
    examples = load_examples(cfg)
    large, large_test = experiment_rows(cfg, examples)
    members = [fake_member(m, m.name, large, large_test, seed=i) for i, m in enumerate((own, big))]
    assert [m.run_dir for m in members] == [own.run_dir, big.run_dir]
    t1, t1_test = task_rows(examples, 1)
    blend = run_blend(cfg.replace(name="b1"), t1, t1_test, [member_config(cfg, m) for m in cfg.members])
    cv = pd.read_csv(out / "cpu/minilm/b1/cv.csv")
    assert list(cv.member) == ["t2_a", "t2_big", "blend", "stack"] and 0 < blend["ndcg"] <= 1
    # the OOF explorer, opened on the blend's encoder, finds the member under its own
    root = out / "cpu/minilm"
    assert explore.run_dir(root, "t2_big") == big.run_dir and explore.run_dir(root, "t2_a") == own.run_dir
    assert sorted(explore.member_oof(root, "t2_big").example_id) == sorted(large.example_id)
    with pytest.raises(ValueError, match="t2_none: missing, and nowhere else in .*; fix: train it"):
        explore.run_dir(root, "t2_none")
    # the big member's folds were made under its own settings: read under the blend's encoder they are refused
    with pytest.raises(ValueError, match="made from other inputs"):
        run_blend(cfg.replace(name="b2"), t1, t1_test, [own, big.replace(lr=1e-4)])
