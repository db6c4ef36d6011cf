"""One logging setup for every stage: `HH:MM:SS stage: message` on stderr."""
import logging


def setup(stage: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {stage}: %(message)s", datefmt="%H:%M:%S")
    return logging.getLogger("esci")
