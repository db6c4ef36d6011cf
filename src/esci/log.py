"""One logging setup for every stage: `HH:MM:SS stage: message` on stderr, from the main process only (under
`accelerate launch` the other processes log warnings and errors alone)."""
import logging
import os


def setup(stage: str) -> logging.Logger:
    main = os.environ.get("RANK", "0") in ("", "0")
    logging.basicConfig(level=logging.INFO if main else logging.WARNING,
                        format=f"%(asctime)s {stage}: %(message)s", datefmt="%H:%M:%S")
    return logging.getLogger("esci")
