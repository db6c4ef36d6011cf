import pytest

from esci.config import ConfigError, load_config


def test_files_apply_in_order_and_env_fills_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    cfg = load_config("configs/cpu.py", overrides=["lr=3e-5", "fields=['title']", "name=x", "epochs=1"])
    assert cfg.profile == "cpu" and cfg.n_folds == 2 and cfg.lr == 3e-5 and cfg.fields == ["title"]
    assert cfg.data_dir == str(tmp_path) and cfg.run_dir.name == "x"


def test_int_accepted_for_float_but_not_reverse():
    assert load_config(overrides=["lr=1"]).lr == 1.0
    with pytest.raises(ConfigError, match="'epochs' must be int"):
        load_config(overrides=["epochs=1.5"])


@pytest.mark.parametrize("arg,word", [("lerning_rate=1", "unknown config key 'lerning_rate'"),
                                      ("ema=1", "'ema' must be bool"),
                                      ("fields=title", "cannot parse 'title' for key 'fields'"),
                                      ("fields=7", "'fields' must be list")])
def test_bad_overrides_fail(arg, word):
    with pytest.raises(ConfigError, match=word):
        load_config(overrides=[arg])


def test_unknown_key_in_file(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("cfg = dict(bach_size=3)\n")
    with pytest.raises(ConfigError, match="bad.py: unknown config key 'bach_size'"):
        load_config(f)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("configs/cpu.py")
    cfg.save(tmp_path / "config.json")
    import json
    assert json.loads((tmp_path / "config.json").read_text())["max_len"] == cfg.max_len


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_config_file_loads_under_each_profile(profile):
    from esci.config import CONFIG_DIR, member_config
    from esci.tasks import HEADS
    for path in sorted(CONFIG_DIR.glob("*.py")):
        if path.stem in ("base", "cpu", "gpu", "sample", "full"):
            continue
        cfg = load_config(CONFIG_DIR / f"{profile}.py", path)
        assert cfg.name == path.stem and cfg.profile == profile, path
        for member in cfg.members:  # a blend's members exist and serve its task
            m = member_config(cfg, member)
            assert cfg.task in HEADS[m.head].serves, (path.stem, member)


def test_a_name_is_never_inherited(tmp_path):
    f = tmp_path / "t9_copy.py"
    f.write_text('parent = "t1_a"\ncfg = dict(lr=1e-5)\n')
    cfg = load_config("configs/cpu.py", f)
    assert cfg.name == "t9_copy" and cfg.task == 1 and cfg.lr == 1e-5


def test_replace_checks_keys_and_types():
    cfg = load_config("configs/cpu.py")
    assert cfg.replace(lr=1).lr == 1.0 and cfg.lr != 1.0
    with pytest.raises(ConfigError, match="unknown config key 'lrr'"):
        cfg.replace(lrr=1)
    with pytest.raises(ConfigError, match="'epochs' must be int"):
        cfg.replace(epochs="3")


@pytest.mark.parametrize("old,new", [("sample", "cpu"), ("full", "gpu")])
def test_old_profile_names_keep_working_and_say_the_new_one(old, new, capsys):
    from esci import config
    config._TOLD.discard(f"{old}.py")
    a, b = load_config(f"configs/{old}.py", "configs/t2_a.py"), load_config(f"configs/{new}.py", "configs/t2_a.py")
    load_config(f"configs/{old}.py")
    told = capsys.readouterr().err.strip().splitlines()
    assert dict(a) == dict(b) and a.profile == new and a.run_dir == b.run_dir
    assert len(told) == 1 and f"configs/{new}.py" in told[0] and told[0].startswith(f"{old}.py:")
