"""Generic helpers for tests that wait on threads, processes or serial lines. Every wait has a deadline."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from TWCManager.twc.messages import Message, parse_message
from TWCManager.twc.protocol import FrameDecoder


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll predicate() until it is truthy; False once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval_s, remaining))


def read_messages_until(
    port: Any,
    predicate: Callable[[Message], bool],
    timeout_s: float,
    decoder: FrameDecoder | None = None,
) -> tuple[Message | None, list[Message]]:
    """Read frames from a pyserial port until one matches predicate.

    Returns (the matching message or None on timeout, every message read). The port
    should have a short timeout (e.g. 0.05 s) so the deadline is honoured.
    """
    decoder = decoder or FrameDecoder()
    seen: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = port.read(256)
        for raw in decoder.feed(data):
            msg = parse_message(raw)
            seen.append(msg)
            if predicate(msg):
                return msg, seen
    return None, seen


def remove_queue_for(path) -> None:
    """Remove the SysV queue a daemon made for ipc.path `path` (the daemon never does,
    like the original, so tests clean up after themselves)."""
    from TWCManager.ipc.wire import ipc_key, remove_queue

    remove_queue(ipc_key(str(path)))


def free_ipc_dir(parent):
    """A new directory under `parent` whose ftok key has no queue yet: ftok keeps only
    16 bits of the inode, so two temp directories can share a key, and a test must
    never serve (or remove) somebody else's queue."""
    from pathlib import Path

    import sysv_ipc

    from TWCManager.ipc.wire import ipc_key

    for n in range(100):
        path = Path(parent) / f"twcipc{n}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        try:
            sysv_ipc.MessageQueue(ipc_key(str(path)))
        except sysv_ipc.ExistentialError:
            return path
    raise RuntimeError("no free SysV key among 50 temporary directories")
