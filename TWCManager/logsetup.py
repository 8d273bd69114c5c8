"""Logging: console lines in the original's style, plus an optional size-bounded file."""
from __future__ import annotations

import logging
import sys


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS: message`, with `ERROR: ` / `WARNING: ` as the original printed them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(": ")
            text = f"{stamp}: {record.levelname}: {rest}"
        return text


def setup_logging(level: int, file: str = "", max_bytes: int = 1_000_000,
                  backups: int = 3, stream=None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level)
    console = logging.StreamHandler(stream or sys.stdout)
    console.setFormatter(ConsoleFormatter())
    root.addHandler(console)
    if file:
        from logging.handlers import RotatingFileHandler  # only with a file: RSS on the Pi

        # Bounded: a Pi runs for years on a small SD card.
        rotating = RotatingFileHandler(file, maxBytes=max_bytes,
                                                        backupCount=backups)
        rotating.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(rotating)
