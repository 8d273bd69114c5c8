"""RS-485 framing for TWC Gen2: checksum, SLIP-style escaping and a streaming decoder.

Pure code: no I/O, no clock. Facts are from twc-protocol.md §1; section numbers below refer to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("TWCManager.protocol")

FRAME_DELIMITER = 0xC0
ESCAPE = 0xDB
ESCAPED_DELIMITER = 0xDC  # DB DC on the wire = C0 in the message (§1.2)
ESCAPED_ESCAPE = 0xDD  # DB DD on the wire = DB in the message (§1.2)

VALID_LENGTHS = (14, 16, 20)  # unescaped, checksum included (§1.3)
MIN_MESSAGE_LENGTH = min(VALID_LENGTHS)

# Largest raw (escaped) candidate we buffer. A valid message is at most 20 bytes, 40 if every
# byte were escaped; anything longer is noise, and the cap keeps it from growing memory.
MAX_CANDIDATE_BYTES = 64

_DELIMITER_BYTES = bytes([FRAME_DELIMITER])
_ESCAPE_BYTES = bytes([ESCAPE])


def checksum(body: bytes) -> int:
    """Checksum of a message body (without checksum): every byte but the first, summed (§1.2)."""
    return sum(body[1:]) & 0xFF


def escape(data: bytes) -> bytes:
    """C0 -> DB DC and DB -> DB DD; nothing else is special (§1.2)."""
    # DB first, so the DB bytes produced for C0 are not escaped again.
    return (
        bytes(data)
        .replace(_ESCAPE_BYTES, bytes([ESCAPE, ESCAPED_ESCAPE]))
        .replace(_DELIMITER_BYTES, bytes([ESCAPE, ESCAPED_DELIMITER]))
    )


def _unescape(data: bytes) -> tuple[bytes, list[int]]:
    """Undo `escape`; also return, per invalid escape, the byte after the DB (-1 if none).

    `DB` followed by anything but DC/DD is replaced by a single `DB`, the following byte being
    consumed with it, as the original's receiver did (§1.2, §11.1 negative tests). A `DB` with
    nothing after it is kept as `DB`.
    """
    if ESCAPE not in data:
        return bytes(data), []
    out = bytearray()
    errors: list[int] = []
    i = 0
    n = len(data)
    while i < n:
        byte = data[i]
        if byte != ESCAPE:
            out.append(byte)
            i += 1
            continue
        follower = data[i + 1] if i + 1 < n else -1
        if follower == ESCAPED_DELIMITER:
            out.append(FRAME_DELIMITER)
        elif follower == ESCAPED_ESCAPE:
            out.append(ESCAPE)
        else:
            errors.append(follower)
            out.append(ESCAPE)
        i += 2
    return bytes(out), errors


def unescape(data: bytes) -> bytes:
    """Undo `escape` (DB DC -> C0, DB DD -> DB); an invalid `DB xx` pair becomes `DB` (§1.2)."""
    return _unescape(data)[0]


def encode_frame(body: bytes) -> bytes:
    """The wire frame for a message body: C0 + escape(body + checksum) + C0.

    No trailing byte: the Python original sends none (§1.2, observed).
    """
    body = bytes(body)
    return (
        _DELIMITER_BYTES
        + escape(body + bytes([checksum(body)]))
        + _DELIMITER_BYTES
    )


def hex_bytes(data: bytes) -> str:
    """Upper-case, space-separated hex, the way the original prints messages."""
    return bytes(data).hex(" ").upper()


@dataclass
class DecoderStats:
    """What a FrameDecoder has seen and dropped.

    Byte counters account for every byte fed: at any time
    ``bytes_in == accounted_bytes + decoder.pending_bytes`` (and after ``flush()`` pending is 0).
    Event counters (frames, bad_length, ...) count candidates, not bytes.
    """

    bytes_in: int = 0  # every byte given to feed()
    delimiter_bytes: int = 0  # C0 bytes
    frame_bytes: int = 0  # raw (escaped) bytes of the messages returned, delimiters excluded
    garbage_bytes: int = 0  # bytes before the first C0 and in short (< 14) candidates
    dropped_bytes: int = 0  # raw bytes of candidates rejected for length, checksum, size, flush

    frames: int = 0  # valid messages returned
    garbage: int = 0  # short candidates (e.g. the FE after each real TWC frame)
    bad_length: int = 0  # unescaped length 14..N not in VALID_LENGTHS
    bad_checksum: int = 0
    bad_escape: int = 0  # DB followed by something other than DC/DD (the message is still checked)
    oversize: int = 0  # candidates longer than the raw cap, dropped up to the next C0
    flushed: int = 0  # partial candidates discarded by flush()

    @property
    def accounted_bytes(self) -> int:
        return self.delimiter_bytes + self.frame_bytes + self.garbage_bytes + self.dropped_bytes


# Decoder states.
_HUNTING = 0  # no C0 seen yet (or after flush): bytes are garbage
_IN_CANDIDATE = 1  # after a C0: bytes are buffered until the next C0
_SKIPPING = 2  # the candidate outgrew the cap: bytes are dropped until the next C0


class FrameDecoder:
    """Streaming decoder: feed raw serial bytes, get complete valid messages.

    Every C0 closes the current candidate and opens the next one, so frames sharing a delimiter
    (`C0 A C0 B C0`) are both parsed (decisions.md §4.5), and the byte real TWCs send after a
    frame (`FE`, §1.2) becomes a short candidate counted as garbage. Raw bytes are kept until the
    closing C0 and unescaped only then, so the output does not depend on how reads are split.
    """

    def __init__(self, max_candidate_bytes: int = MAX_CANDIDATE_BYTES) -> None:
        if max_candidate_bytes < 2 * max(VALID_LENGTHS):
            raise ValueError("max_candidate_bytes must hold a fully escaped 20-byte message")
        self.max_candidate_bytes = max_candidate_bytes
        self.stats = DecoderStats()
        self._state = _HUNTING
        self._buf = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Raw bytes buffered in the open candidate (not yet accounted in stats)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume raw bytes; return the complete valid messages (unescaped, checksum included)."""
        data = bytes(data)
        stats = self.stats
        stats.bytes_in += len(data)
        messages: list[bytes] = []
        pos = 0
        n = len(data)
        while pos < n:
            idx = data.find(FRAME_DELIMITER, pos)
            end = n if idx < 0 else idx
            if end > pos:
                self._take(data, pos, end)
            if idx < 0:
                break
            stats.delimiter_bytes += 1
            if self._state == _IN_CANDIDATE:
                self._close(messages)
            self._state = _IN_CANDIDATE
            pos = idx + 1
        return messages

    def flush(self) -> int:
        """Discard a partial candidate (e.g. after a silence or a port reopen); return its size.

        Afterwards bytes are garbage until the next C0, as at start.
        """
        dropped = len(self._buf)
        if self._state == _IN_CANDIDATE and dropped:
            self.stats.flushed += 1
            self.stats.dropped_bytes += dropped
        self._buf.clear()
        self._state = _HUNTING
        return dropped

    def _take(self, data: bytes, start: int, end: int) -> None:
        """Handle the non-C0 bytes data[start:end]."""
        count = end - start
        if self._state == _HUNTING:
            self.stats.garbage_bytes += count
            log.debug("Garbage before first delimiter: %s", hex_bytes(data[start:end]))
        elif self._state == _SKIPPING:
            self.stats.dropped_bytes += count
        elif len(self._buf) + count > self.max_candidate_bytes:
            # No C0 for too long: noise. Drop it now rather than buffer it (bounded memory).
            self.stats.oversize += 1
            self.stats.dropped_bytes += len(self._buf) + count
            log.warning(
                "Dropping over-long message candidate (> %d raw bytes without a C0)",
                self.max_candidate_bytes,
            )
            self._buf.clear()
            self._state = _SKIPPING
        else:
            self._buf += data[start:end]

    def _close(self, messages: list[bytes]) -> None:
        """A C0 ended the open candidate: classify it."""
        raw = bytes(self._buf)
        self._buf.clear()
        if not raw:
            return  # back-to-back C0s: nothing between them
        stats = self.stats
        msg, escape_errors = _unescape(raw)
        stats.bad_escape += len(escape_errors)
        if len(msg) < MIN_MESSAGE_LENGTH:
            # Every real frame is followed by one of these (the FE, §1.2): not worth a warning.
            stats.garbage += 1
            stats.garbage_bytes += len(raw)
            log.debug("Garbage between messages: %s", hex_bytes(raw))
            return
        for follower in escape_errors:
            if follower < 0:
                log.warning("Escape byte 0xDB at the end of a message; message may be corrupted")
            else:
                log.warning(
                    "Escape byte 0xDB followed by invalid byte 0x%02X; message may be corrupted",
                    follower,
                )
        if len(msg) not in VALID_LENGTHS:
            stats.bad_length += 1
            stats.dropped_bytes += len(raw)
            log.warning("Ignoring message of unexpected length %d: %s", len(msg), hex_bytes(msg))
            return
        expected = checksum(msg[:-1])
        if msg[-1] != expected:
            stats.bad_checksum += 1
            stats.dropped_bytes += len(raw)
            log.warning(
                "Checksum %02X does not match %02X. Ignoring message: %s",
                msg[-1],
                expected,
                hex_bytes(msg),
            )
            return
        stats.frames += 1
        stats.frame_bytes += len(raw)
        messages.append(msg)
