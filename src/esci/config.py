"""Experiment configuration: a documented base plus small files that list only what they change.

In: `configs/base.py` (every key, one line of documentation each) and any number of config files
(`configs/cpu.py configs/t2_a.py`), applied in order, then `key=value` command-line overrides. A file may
name `parent = "t1_a"` to start from another experiment's file; a file with `renamed = "<new>"` is an old name of
another (a profile's), loaded as its parent with one line on stderr that says the new name.
Paths: an empty data_dir / output_dir / model_dir is filled from DATA_DIR / OUTPUT_DIR / MODEL_DIR, else the
repository's input/ and output/ and the packaged MiniLM; relative paths are taken from the working directory.
Out: a `Config` (attribute access) whose keys and types match the base; unknown keys or wrong types fail with
the file or argument that caused them. `save()` writes the resolved config next to a result.
"""
from __future__ import annotations

import ast
import os
import re
import runpy
import sys
from pathlib import Path

from . import EsciError
from .io import write_json

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "configs"
SHARED_DIRS = {"data", "features", "sample_data", "cache"}  # folders of a profile that are not an encoder's runs
_TOLD: set = set()  # old config names whose new name this process has printed


def encoder_name(model_dir: str) -> str:
    """An encoder's short name: minilm (the packaged default), tiny, or the model folder's name."""
    if model_dir in ("", "tiny"):
        return model_dir or "minilm"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model_dir).name) or "model"


class ConfigError(EsciError):
    pass


class Config(dict):
    """The resolved keys; `overrides` keeps the command line's key=value arguments (blends pass them on to the
    configs of their members, so a member is read as it was trained)."""
    __getattr__ = dict.__getitem__
    overrides: tuple = ()

    def __setattr__(self, key, value):
        self[key] = value

    def save(self, path) -> None:
        write_json(dict(self), path)

    def replace(self, **changes) -> "Config":
        """A copy with `changes`, checked like command-line overrides (known keys, base types)."""
        base = _read_file(CONFIG_DIR / "base.py")
        out = dict(self)
        for key, value in changes.items():
            if key not in base:
                raise ConfigError(f"replace: unknown config key '{key}'; fix: see configs/base.py for keys")
            out[key] = _check_type(key, value, base[key], "replace")
        new = Config(out)
        new.__dict__["overrides"] = self.overrides
        return new

    @property
    def profile_dir(self) -> Path:
        """output/<profile>: everything made under one profile."""
        return Path(self.output_dir) / self.profile

    @property
    def backbone(self) -> str:
        return encoder_name(self.model_dir)

    @property
    def run_root(self) -> Path:
        """output/<profile>/<backbone>: the runs of one encoder (two backbones never share a folder)."""
        return self.profile_dir / self.backbone

    @property
    def run_dir(self) -> Path:
        """output/<profile>/<backbone>/<name>: where this experiment's folds, OOF and test tables go."""
        return self.run_root / self.name

    def fold_dir(self, fold: int) -> Path:
        """run_dir/fold<k> (fold -1: run_dir/full, the fit on every training row)."""
        return self.run_dir / ("full" if fold < 0 else f"fold{fold}")

    def fold_complete(self, fold: int) -> bool:
        """A fold is complete when its metrics.json exists (written last)."""
        return (self.fold_dir(fold) / "metrics.json").exists()

    @property
    def data_root(self) -> Path:
        """output/<profile>/data: the prepared examples, products and folds, made once per data set."""
        return self.profile_dir / "data"

    @property
    def encoders_root(self) -> Path:
        """output/encoders: encoder folders converted to safetensors (esci.encoder.ready), shared by profiles."""
        return Path(self.output_dir) / "encoders"

    @property
    def features_root(self) -> Path:
        """output/<profile>/features: token and unit stores, each under a key of what made it."""
        return self.profile_dir / "features"


def _read_file(path: Path) -> dict:
    if not path.exists():
        alt = CONFIG_DIR / path.name
        if not alt.exists():
            raise ConfigError(f"{path}: config file not found; fix: give a path or a name under {CONFIG_DIR}")
        path = alt
    ns = runpy.run_path(str(path))
    if not isinstance(ns.get("cfg"), dict):
        raise ConfigError(f"{path}: defines no `cfg = dict(...)`; fix: add one listing the keys it changes")
    if ns.get("renamed") and path.name not in _TOLD:  # an old name that keeps working
        _TOLD.add(path.name)
        print(f"{path.name}: this profile is now called {ns['renamed']} (configs/{ns['renamed']}.py, the same settings; "
              f"results under <output>/{ns['renamed']}/); the old name keeps working", file=sys.stderr)
    parent = _read_file(CONFIG_DIR / f"{ns['parent']}.py") if ns.get("parent") else {}
    parent.pop("name", None)  # a name is never inherited: two experiments must not share an output folder
    return {**parent, **ns["cfg"]}


def _check_type(key: str, value, default, where: str):
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{where}: key '{key}' must be {type(default).__name__} (base value {default!r}), "
                          f"got {type(value).__name__} {value!r}; fix: give a value of that type")
    return value


def _parse_override(arg: str, base: dict):
    key, _, text = arg.partition("=")
    key = key.strip()
    if key not in base:
        raise ConfigError(f"command line: unknown config key '{key}' in '{arg}'; fix: see configs/base.py for keys")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if not isinstance(base[key], str):
            raise ConfigError(f"command line: cannot parse '{text}' for key '{key}'; fix: give a Python literal")
        value = text
    if isinstance(base[key], str) and not isinstance(value, str):
        value = text
    return key, value


def load_config(*sources: str | Path, overrides: list[str] = ()) -> Config:
    """Base, then each file in order, then overrides; environment fills the empty path keys."""
    base = _read_file(CONFIG_DIR / "base.py")
    cfg = dict(base)
    for src in sources:
        path = Path(src)
        values = _read_file(path)
        if "name" not in values and "profile" not in values:  # an experiment file is named after itself
            values["name"] = path.stem
        for key, value in values.items():
            if key not in base:
                raise ConfigError(f"{path}: unknown config key '{key}'; fix: add it to configs/base.py or fix the typo")
            cfg[key] = _check_type(key, value, base[key], str(path))
    for arg in overrides:
        key, value = _parse_override(arg, base)
        cfg[key] = _check_type(key, value, base[key], f"command line '{arg}'")
    for key, env, default in (("data_dir", "DATA_DIR", str(ROOT / "input")),
                              ("output_dir", "OUTPUT_DIR", str(ROOT / "output")), ("model_dir", "MODEL_DIR", "")):
        if not cfg[key]:
            cfg[key] = os.environ.get(env) or default
    for key in ("data_dir", "output_dir"):
        if not Path(cfg[key]).is_absolute() and not (key == "data_dir" and cfg[key] == "sample"):
            cfg[key] = str((Path.cwd() / cfg[key]).resolve())
    out = Config(cfg)
    out.__dict__["overrides"] = tuple(overrides)
    return out


def member_config(cfg: Config, name: str) -> Config:
    """The config of experiment `name` (configs/<name>.py) under cfg's profile, paths and command-line overrides
    (all but those that name the blend itself). A member file that sets its own model_dir keeps it: a blend may
    stack members fine-tuned from other encoders, each read from its encoder's folder of runs."""
    own = {"name", "task", "members", "blend_steps", "fold"}
    path = CONFIG_DIR / f"{name}.py"
    shared = ["data_dir", "output_dir", "n_folds", "seed"]
    if not _read_file(path).get("model_dir"):
        shared.append("model_dir")
    return load_config(CONFIG_DIR / f"{cfg.profile}.py", path, overrides=[f"{k}={cfg[k]}" for k in shared]
                       + [o for o in cfg.overrides if o.partition("=")[0].strip() not in own])


def main(argv: list[str] | None = None) -> None:
    """For the drivers: `python -m esci.config FILES... [key=value ...] --get KEY` prints one resolved value;
    `... --pending-folds` the folds of the experiment still to train (the finished ones reported as skipped)."""
    argv = sys.argv[1:] if argv is None else argv
    pending = "--pending-folds" in argv
    argv = [a for a in argv if a != "--pending-folds"]
    key = None if pending else argv[argv.index("--get") + 1]
    try:
        cfg = from_argv([a for i, a in enumerate(argv) if a != "--get" and (i == 0 or argv[i - 1] != "--get")])
        if pending:
            from .provenance import pending_folds
            print(*pending_folds(cfg))
            return
    except EsciError as e:
        print(f"config: error: {e}", file=sys.stderr)
        sys.exit(2)
    value = cfg[key]
    print(" ".join(map(str, value)) if isinstance(value, list) else value)


def from_argv(argv: list[str] | None = None) -> Config:
    """`script.py cfgA.py cfgB.py key=value ...`: files are args without '=', overrides are the rest."""
    argv = sys.argv[1:] if argv is None else argv
    files = [a for a in argv if "=" not in a]
    return load_config(*files, overrides=[a for a in argv if "=" in a])


if __name__ == "__main__":
    main()
