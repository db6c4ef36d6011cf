"""How every stage starts and ends: `--help`, config from the command line, one-line errors.

`run_stage(name, doc, fn)` is the whole body of a numbered stage script. `--help` prints the stage's docstring,
the environment variables and every config key with its default and one-line documentation from configs/base.py.
Otherwise the arguments are config files and key=value overrides (`--force` is `force=True`); `fn(cfg)` runs.
An `EsciError` (bad input or configuration) and a write that finds the disk full print one line on stderr and exit
2; `--debug` or ESCI_DEBUG=1 shows the traceback instead.
"""
from __future__ import annotations

import os
import re
import sys

from . import EsciError
from .config import CONFIG_DIR, from_argv
from .io import disk_full, full_disk_error
from .log import setup

ENVIRONMENT = """Environment:
  DATA_DIR     folder of the ESCI parquet files (default input/); DATA_DIR=sample uses the embedded sample
  OUTPUT_DIR   where outputs go (default output/)
  MODEL_DIR    a local Hugging Face encoder folder (default: the packaged all-MiniLM-L6-v2)
  ESCI_DEBUG   1 = show tracebacks of input errors (same as --debug)
The drivers (run_task<k>.sh) also read PROFILE (cpu or gpu), PYTHON, LAUNCH and OVERRIDES (bash run_task1.sh --help)."""


def config_keys() -> list[tuple[str, str, str]]:
    """(key, default, documentation) of every key, read from configs/base.py."""
    rows = []
    for line in (CONFIG_DIR / "base.py").read_text().splitlines():
        m = re.match(r"\s{4}(\w+)=(.*?),?\s+#\s(.*)$", line)
        if m:
            rows.append(m.groups())
        elif rows and re.match(r"\s+#\s", line) and not re.match(r"\s{4}#", line):
            rows[-1] = (rows[-1][0], rows[-1][1], rows[-1][2] + " " + line.strip()[2:])
    return rows


def help_text(doc: str) -> str:
    keys = "\n".join(f"  {k:<20} {d:<12} {doc}" if len(d) <= 12 else f"  {k:<20} {d}\n  {'':<20} {'':<12} {doc}"
                     for k, d, doc in config_keys())
    return (f"{doc.strip()}\n\nArguments: config files (configs/<name>.py, later files win), then key=value "
            f"overrides; --force redoes results made from other inputs; --debug shows tracebacks.\n\n"
            f"{ENVIRONMENT}\n\nConfig keys (configs/base.py):\n{keys}")


def run_stage(name: str, doc: str, fn, argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(help_text(doc))
        sys.exit(0)
    debug = "--debug" in argv or os.environ.get("ESCI_DEBUG") == "1"
    argv = [("force=True" if a == "--force" else a) for a in argv if a != "--debug"]
    setup(name)
    try:
        fn(from_argv(argv))
    except EsciError as e:
        if debug:
            raise
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:  # a write outside esci.io's helpers that found the disk full
        if debug or not disk_full(e):
            raise
        print(f"{name}: error: {full_disk_error(getattr(e, 'filename', None) or 'OUTPUT_DIR', e)}", file=sys.stderr,
              flush=True)
        sys.exit(2)
