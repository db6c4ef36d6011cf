"""The training loop on the tiny encoder: every head and trick trains, accumulation steps every N micro-batches,
a run killed mid-epoch resumes to the same result, OOF covers each training row once, the training log reaches
an Accelerate tracker."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker

import esci.loop as loop_module
from esci import EsciError
from esci.config import load_config
from esci.prepare import experiment_rows, load_examples, prepare
from esci.provenance import fold_fingerprint
from esci.loop import EMA, Loop, make_accelerator
from esci.train import batch_order, collate, compute_loss, rdrop_term, task_loss
from esci.features import Features, TokenStore

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model_dir=tiny", "max_train_queries=40", "max_test_rows=60", "epochs=2", "batch_size=16",
        "lr=5e-4", "unit_match=True", "use_ids=False"]


def tiny_cfg(tmp_path, *extra, task=2):
    return load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path}", "data_dir=sample",
                                                       "sample_queries=120", f"task={task}", *TINY, *extra])


def run_fold(cfg_args, env=None, stage="03_train.py"):
    return subprocess.run([sys.executable, str(ROOT / "src" / stage), "configs/cpu.py", *cfg_args],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})


def args(tmp_path, *extra):
    return [f"output_dir={tmp_path}", "data_dir=sample", "sample_queries=120", *TINY, *extra]


@pytest.mark.parametrize("extra", [["head=cls4", "loss=poly1", "ema=True"], ["head=cls2", "task=3", "fgm=True"],
                                   ["head=reg", "task=1", "rdrop=True"], ["head=cls4", "mixup=True", "grad_accum=3"],
                                   ["head=cls4", "rdrop=True", "use_units=False", "use_ids=True"],
                                   ["head=cls4", "ema=True", "fgm=True", "rdrop=True", "mixup=True"]])
def test_heads_and_tricks_train(tmp_path, extra):
    from esci.train import train_fold
    cfg = tiny_cfg(tmp_path, *extra, "epochs=1", "name=x")
    prepare(cfg)
    m = train_fold(cfg, 0)
    out = cfg.run_dir / "fold0"
    oof, test = pd.read_parquet(out / "oof.parquet"), pd.read_parquet(out / "test.parquet")
    train, _ = experiment_rows(cfg, load_examples(cfg))
    val = train[train.fold == 0]
    assert train.query_id.nunique() == 40
    assert sorted(oof.example_id) == sorted(val.example_id) and len(test) == 60
    assert np.isfinite(oof.score).all() and not (out / "state.pt").exists()
    n_micro = math.ceil(m["train_rows"] / 16)
    assert m["steps"] == math.ceil(n_micro / cfg.grad_accum)
    if cfg.head != "reg":
        probs = oof.filter(like="p_").to_numpy()
        assert ((probs >= 0) & (probs <= 1)).all()


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    a = args(tmp_path / "a", "name=r", "save_every=4", "fold=1", "ema=True", "rdrop=True")
    b = args(tmp_path / "b", "name=r", "save_every=4", "fold=1", "ema=True", "rdrop=True")
    for cfg_args in (a, b):
        assert run_fold(cfg_args, stage="01_prepare.py").returncode == 0
    killed = run_fold(a, {"ESCI_FAIL_AT_STEP": "8"})
    fold = tmp_path / "a/cpu/tiny/r/fold1"
    assert killed.returncode == 3, killed.stderr[-2000:]
    assert (fold / "state.pt").exists() and not (fold / "metrics.json").exists()
    resumed = run_fold(a)
    assert resumed.returncode == 0 and "resumed at epoch 0, step 8" in resumed.stderr, resumed.stderr[-2000:]
    straight = run_fold(b)
    assert straight.returncode == 0, straight.stderr[-2000:]
    ma, mb = (json.loads((tmp_path / d / "cpu/tiny/r/fold1/metrics.json").read_text()) for d in "ab")
    assert ma["steps"] == mb["steps"] and ma["micro_f1"] == pytest.approx(mb["micro_f1"], abs=1e-6)
    oa, ob = (pd.read_parquet(tmp_path / d / "cpu/tiny/r/fold1/oof.parquet") for d in "ab")
    assert (oa.example_id == ob.example_id).all()
    np.testing.assert_allclose(oa.p_E, ob.p_E, atol=1e-5)
    again = run_fold(a)
    assert "complete; skipping" in again.stderr
    # an encoder loaded from its folder (from_pretrained leaves it in eval mode), killed where an epoch ends and
    # resumed: the same result as a run never stopped, dropout on in every epoch of both
    import families
    enc = families.build("bert", families.sample_text(tmp_path / "a/cpu/sample_data"), tmp_path / "enc")
    runs = {}
    for d in ("d", "e"):
        runs[d] = args(tmp_path / d, "name=r", "save_every=0", "fold=1", "ema=True", f"model_dir={enc}",
                       "encoder_dropout=-1.0")  # the checkpoint's own dropout, which the eval-mode bug left off
        assert run_fold(runs[d], stage="01_prepare.py").returncode == 0
    assert run_fold(runs["e"]).returncode == 0
    me = json.loads((tmp_path / "e/cpu/enc/r/fold1/metrics.json").read_text())
    assert run_fold(runs["d"], {"ESCI_FAIL_AT_STEP": str(me["steps"] // 2)}).returncode == 3
    resumed = run_fold(runs["d"])
    assert resumed.returncode == 0 and "resumed at epoch 1" in resumed.stderr, resumed.stderr[-2000:]
    od, oe = (pd.read_parquet(tmp_path / d / "cpu/enc/r/fold1/oof.parquet") for d in "de")
    np.testing.assert_allclose(od.p_E, oe.p_E, atol=1e-5)
    # the second epoch trained alike (the kept weights may be the first epoch's): its loss and its evaluation
    logs = [[json.loads(line) for line in (tmp_path / d / "cpu/enc/r/fold1/train_log.jsonl").read_text().splitlines()]
            for d in "de"]
    second = [[(e.get("loss"), e.get("eval", {}).get("task2_micro_f1")) for e in log if e["epoch"] == 1]
              for log in logs]
    assert len(second[0]) == 2 and np.allclose(np.array(second[0], float), np.array(second[1], float), atol=1e-6,
                                               equal_nan=True), second
    # a resume checkpoint damaged after the kill is dropped: the fold starts over, to the same result
    c = args(tmp_path / "c", "name=r", "save_every=4", "fold=1", "ema=True", "rdrop=True")
    assert run_fold(c, stage="01_prepare.py").returncode == 0
    assert run_fold(c, {"ESCI_FAIL_AT_STEP": "8"}).returncode == 3
    state = tmp_path / "c/cpu/tiny/r/fold1/state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    over = run_fold(c)
    assert over.returncode == 0 and "state.pt: damaged" in over.stderr and "starting over" in over.stderr
    oc = pd.read_parquet(tmp_path / "c/cpu/tiny/r/fold1/oof.parquet")
    np.testing.assert_allclose(oc.p_E, ob.p_E, atol=1e-5)
    steps = [[json.loads(line)["step"] for line in (tmp_path / d / "cpu/tiny/r/fold1/train_log.jsonl").read_text()
              .splitlines()] for d in "bc"]
    assert steps[0] == steps[1]  # the killed run's lines are not kept


def test_batches_cover_rows_once_and_bucket_lengths():
    lengths = np.random.default_rng(0).integers(5, 200, 1000)
    batches = batch_order(lengths, 32, seed=1, bucket=True)
    rows = np.concatenate(batches)
    assert sorted(rows) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    plain = np.mean([lengths[b].max() - lengths[b].min() for b in batch_order(lengths, 32, 1, bucket=False)])
    assert spread < plain / 3
    assert [list(b) for b in batch_order(lengths, 32, 1, True)] == [list(b) for b in batches]


def test_collate_pads_to_multiple():
    tok = TokenStore(None, np.array([7, 8, 9], np.int32), np.array([0, 2, 3]), np.array([4, 5, 6], np.int32),
                     np.array([0, 1, 3]), np.array([1, -1, 2, -2, 2]), np.array([0, 0, 0, 1, 1]), True, 0, 64)
    cfg = load_config(overrides=["use_units=False", "use_ids=False"])
    feats = Features(tok, None, np.array([0, 1]), np.array([1, 0]), cfg)
    b = collate(feats, np.array([0, 1]), pad_multiple=8, y=np.array([1, 2]), w=np.ones(2, np.float32))
    assert b["input_ids"].tolist() == [[1, 7, 8, 2, 5, 6, 2, 0], [1, 9, 2, 4, 2, 0, 0, 0]]
    assert b["token_type_ids"].tolist()[0] == [0, 0, 0, 0, 1, 1, 1, 0] and b["attention_mask"].sum().item() == 12
    assert b["y"].tolist() == [1, 2] and "bag0" not in b


def test_losses():
    cfg = load_config(overrides=["head=cls4"])
    logits = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    y, w = torch.tensor([0, 1]), torch.tensor([1.0, 1.0])
    ce = task_loss(cfg, logits, y, w)
    cfg.loss = "poly1"
    poly = task_loss(cfg, logits, y, w)
    p_true = logits.softmax(-1)[0, 0]
    assert poly.item() == pytest.approx(ce.item() + (1 - p_true).item(), rel=1e-5)
    # weights: a zero-weight row does not count
    assert task_loss(cfg, logits, torch.tensor([0, 0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(
        task_loss(cfg, logits[:1], y[:1], w[:1]).item())
    assert rdrop_term(cfg, logits, logits).item() == pytest.approx(0.0, abs=1e-7)
    assert rdrop_term(cfg, logits, logits.flip(0)).item() > 0
    cfg.head = "reg"
    assert rdrop_term(cfg, torch.ones(3, 1), torch.zeros(3, 1)).item() == pytest.approx(1.0)
    # regressors: MSE on the gains, or (loss=bce, the official baseline's) BCE with the gain as a soft target
    out, gain, w = torch.tensor([[0.0], [2.0]]), torch.tensor([0.1, 1.0]), torch.ones(2)
    cfg.loss = "ce"
    assert task_loss(cfg, out, gain, w).item() == pytest.approx(((0.0 - 0.1) ** 2 + (2.0 - 1.0) ** 2) / 2)
    cfg.loss = "bce"
    p = torch.sigmoid(out[:, 0])
    bce = -(gain * p.log() + (1 - gain) * (1 - p).log()).mean()
    assert task_loss(cfg, out, gain, w).item() == pytest.approx(bce.item(), rel=1e-5)


def test_ema_warms_up_and_tracks():
    m = torch.nn.Linear(2, 1)
    ema = EMA(m, 0.999)
    w0 = ema.shadow["weight"].clone()
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)
    d = 2 / 11  # warm-up decay after the first update
    assert torch.allclose(ema.shadow["weight"], d * w0 + (1 - d) * 1.0)
    before = ema.shadow["weight"].clone()
    for _ in range(50):
        ema.update(m)
    assert (ema.shadow["weight"] - 1).abs().max() < (before - 1).abs().max()


def test_rdrop_with_mixup_mixes_within_each_half():
    """Both dropout passes mix every row with the same partner, each inside its own half of the doubled batch."""
    seen = {}

    def model(batch, mix=None):
        seen["n"], seen["mix"] = len(batch["y"]), mix
        return torch.zeros(len(batch["y"]), 4, requires_grad=True)

    cfg = load_config(overrides=["rdrop=True", "mixup=True"])
    n = 6
    batch = {"y": torch.arange(n) % 4, "w": torch.ones(n), "input_ids": torch.ones(n, 3, dtype=torch.long)}
    for i in range(3):
        batch[f"bag{i}"], batch[f"bag{i}_offsets"] = torch.arange(2 * n), torch.arange(0, 2 * n, 2)
    loss = compute_loss(cfg, model, batch)
    perm = seen["mix"][1]
    assert seen["n"] == 2 * n and torch.isfinite(loss)
    assert torch.equal(perm[n:], perm[:n] + n) and sorted(perm[:n].tolist()) == list(range(n))


def test_fgm_and_rdrop_change_the_gradients():
    from esci.loop import make_accelerator
    from esci.encoder import load_encoder
    from esci.model import CrossEncoder
    from esci.train import _fgm_step
    rng = np.random.default_rng(0)
    n = 8
    lens = rng.integers(3, 9, n)
    tok = TokenStore(None, rng.integers(5, 500, lens.sum()).astype(np.int32), np.r_[0, np.cumsum(lens)],
                     rng.integers(5, 500, 2 * lens.sum()).astype(np.int32), np.r_[0, np.cumsum(2 * lens)],
                     np.array([101, -1, 102, -2, 102]), np.array([0, 0, 0, 1, 1]), True, 0, 64)
    cfg = load_config(overrides=["use_units=False", "use_ids=False", "model_dir=tiny", "fgm_eps=1.0"])
    feats = Features(tok, None, np.arange(n), np.arange(n), cfg)
    batch = collate(feats, np.arange(n), 8, y=np.arange(n) % 4, w=np.ones(n, np.float32))

    def grads(c, fgm=False, seed=0):
        torch.manual_seed(0)
        model = CrossEncoder(load_encoder("tiny"), c, 0, 0, 0)
        torch.manual_seed(seed)
        compute_loss(c, model, batch).backward()
        if fgm:
            before = model.word_embeddings().weight.detach().clone()
            _fgm_step(c, model, model, batch, make_accelerator(c))
            assert torch.equal(model.word_embeddings().weight, before)  # the perturbation is taken back
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain = grads(cfg)
    assert torch.allclose(plain, grads(cfg))  # the same seed gives the same gradients
    assert not torch.allclose(plain, grads(cfg, fgm=True), atol=1e-6)
    assert not torch.allclose(plain, grads(cfg.replace(rdrop=True)), atol=1e-6)
    # without dropout both passes agree, the R-Drop term is 0 and the loss is the plain one
    still = cfg.replace(rdrop=True, head_dropout=0.0)
    torch.manual_seed(0)
    model = CrossEncoder(load_encoder("tiny"), still, 0, 0, 0).eval()
    assert compute_loss(still, model, batch).item() == pytest.approx(
        compute_loss(still.replace(rdrop=False), model, batch).item(), rel=1e-5)


def test_a_changed_config_never_reuses_a_fold(tmp_path):
    from esci import EsciError
    from esci.members import load_member
    from esci.prepare import task_rows
    from esci.train import train_fold
    cfg = tiny_cfg(tmp_path, "epochs=1", "name=f", "n_folds=2")
    prepare(cfg)
    first = train_fold(cfg, 0)
    assert train_fold(cfg, 0) == first  # same inputs: reused
    with pytest.raises(EsciError, match=r"made from other inputs \(lr 0.0005 -> 0.0003\); fix: give this run another"):
        train_fold(cfg.replace(lr=3e-4), 0)
    # a killed run's state is not resumed under another config either, and the stage says so in one line
    res = run_fold([f"output_dir={tmp_path}", "data_dir=sample", "sample_queries=120", *TINY, "epochs=1", "name=f",
                    "n_folds=2", "fold=0", "batch_size=8"])
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("train: error: ")
    assert "batch_size 16 -> 8" in res.stderr and "Traceback" not in res.stderr
    redone = train_fold(cfg.replace(lr=3e-4, force=True), 0)
    assert redone["steps"] == first["steps"]
    assert json.loads((cfg.run_dir / "fold0/config.json").read_text())["lr"] == 3e-4
    train_fold(cfg.replace(lr=3e-4), 1)
    train, test = task_rows(load_examples(cfg), 2)
    with pytest.raises(EsciError, match="made from other inputs than f asks for now"):
        load_member(cfg, train, test)  # the blend reads folds made with lr 3e-4 while the config says 5e-4
    assert len(load_member(cfg.replace(lr=3e-4), train, test)[0]) == len(train)


def test_a_training_seed_makes_another_member_on_the_same_folds(tmp_path):
    from esci.train import train_fold
    cfg = tiny_cfg(tmp_path, "epochs=1", "name=s", "n_folds=2")
    prepare(cfg)
    train_fold(cfg, 0)
    # unset, the key stays out of the fingerprint: folds trained before it existed are still reused
    assert "train_seed" not in json.loads((cfg.run_dir / "fold0/fingerprint.json").read_text())["config"]
    with pytest.raises(EsciError, match=r"train_seed None -> 7"):
        train_fold(cfg.replace(train_seed=7), 0)
    other = cfg.replace(name="s7", train_seed=7)
    train_fold(other, 0)
    a, b = (pd.read_parquet(c.run_dir / "fold0/oof.parquet") for c in (cfg, other))
    assert a.example_id.equals(b.example_id)
    assert np.abs(a.p_E.to_numpy() - b.p_E.to_numpy()).max() > 1e-3


def test_encoder_dropout_sets_every_dropout_of_the_encoder_only(tmp_path):
    from esci.train import _setup
    cfg = tiny_cfg(tmp_path, "epochs=1", "n_folds=2", "head_dropout=0.3", "encoder_dropout=-1.0")
    prepare(cfg)
    rates = lambda model: {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    own = _setup(cfg, 0).model
    assert rates(own.encoder) == {0.1} and rates(own.head) == {0.3}  # the checkpoint's own
    off = _setup(cfg.replace(encoder_dropout=0.0), 0).model
    assert rates(off.encoder) == {0.0} and rates(off.head) == {0.3}
    assert "encoder_dropout" not in fold_fingerprint(cfg)["config"]  # folds trained before the key stay valid
    assert fold_fingerprint(cfg.replace(encoder_dropout=0.0))["config"]["encoder_dropout"] == 0.0


def test_a_training_budget_cuts_epochs_never_rows(tmp_path):
    from esci.train import planned_epochs, train_fold
    cfg = tiny_cfg(tmp_path, "epochs=2", "name=b", "n_folds=2")
    assert planned_epochs(cfg.replace(epochs=3, max_train_examples=0), 10 ** 6) == 3  # no budget: epochs as set
    budget = cfg.replace(epochs=3, max_train_examples=250)
    assert [planned_epochs(budget, n) for n in (50, 100, 125, 200, 10 ** 6)] == [3, 2, 2, 1, 1]
    prepare(cfg)
    m = train_fold(cfg.replace(max_train_examples=1), 0)
    assert {h["epoch"] for h in m["history"]} == {0}
    assert m["steps"] == math.ceil(m["train_rows"] / 16) and m["train_rows"] > 100


def test_max_steps_stops_training_and_resumes_to_the_same_count(tmp_path):
    """A cap on optimizer steps cuts the epochs' batches where the cap falls (evaluating there), also across a kill;
    every validation and test row is still predicted once."""
    a = args(tmp_path / "a", "name=s", "epochs=3", "max_steps=5", "save_every=2", "evals_per_epoch=2")
    assert run_fold(a, stage="01_prepare.py").returncode == 0
    killed = run_fold(a, {"ESCI_FAIL_AT_STEP": "2"})
    assert killed.returncode == 3, killed.stderr[-2000:]
    resumed = run_fold(a)
    assert resumed.returncode == 0 and "resumed at epoch 0, step 2" in resumed.stderr, resumed.stderr[-2000:]
    fold = tmp_path / "a/cpu/tiny/s/fold0"
    m = json.loads((fold / "metrics.json").read_text())
    assert m["steps"] == 5 and m["train_rows"] > 16 * 5  # the cap, not the rows, ended it
    assert [h["epoch"] for h in m["history"]] == [0, 0] and m["history"][-1]["step"] == 5
    train, _ = experiment_rows(tiny_cfg(tmp_path / "a"), load_examples(tiny_cfg(tmp_path / "a")))
    oof = pd.read_parquet(fold / "oof.parquet")
    assert sorted(oof.example_id) == sorted(train[train.fold == 0].example_id)
    assert len(pd.read_parquet(fold / "test.parquet")) == 60


class Recorder(GeneralTracker):
    name, requires_logging_directory, main_process_only = "recorder", False, True

    def __init__(self):
        super().__init__()
        self.logged = []

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        pass

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, values))


def test_a_tracker_gets_the_training_log_as_scalars(tmp_path):
    recorder = Recorder()
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loop = Loop(Accelerator(cpu=True, log_with=[recorder]), model, opt,
                torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), None, tmp_path)
    entry = {"step": 3, "epoch": 0, "loss": 0.5, "lr": [1e-4, 2e-3], "eval": {"task2_f1": 0.7, "note": "x"}}
    loop.log(entry)
    assert recorder.logged == [(3, {"loss": 0.5, "lr/0": 1e-4, "lr/1": 2e-3, "eval/task2_f1": 0.7})]
    assert json.loads((tmp_path / "train_log.jsonl").read_text()) == entry


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(loop_module.TRACKER_PACKAGES, "tensorboard", "no_such_tracker_package")
    with pytest.raises(EsciError, match="pip install no_such_tracker_package"):
        make_accelerator(tiny_cfg(tmp_path, "tracker=tensorboard"))
    with pytest.raises(EsciError, match="tracker='tb' is not one of"):
        make_accelerator(tiny_cfg(tmp_path, "tracker=tb"))


def test_one_process_makes_accelerators_of_different_precisions():
    """A notebook or test session trains at fp32 after bf16: each accelerator gets the precision it was asked for."""
    first = make_accelerator(load_config(overrides=["precision=bf16"])).mixed_precision
    second = make_accelerator(load_config(overrides=["precision=fp32"])).mixed_precision
    assert (first, second) == ("bf16", "no")
