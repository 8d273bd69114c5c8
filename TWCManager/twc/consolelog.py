"""The original's console line formats, as pure functions (twc-protocol.md §11.2).

No timestamps here: the `HH:MM:SS: ` prefix comes from the logging set-up.
"""
from __future__ import annotations

from .messages import (
    DEBUG_FIRMWARE_REPLY,
    DEBUG_SERIAL_REPLY,
    DebugReply,
    DebugRequest,
    KwhReport,
    KwhRequest,
    MasterHeartbeat,
    MasterIdle,
    MasterIdle4h,
    MasterLinkready1,
    MasterLinkready2,
    Message,
    SlaveHeartbeat,
    SlaveLinkready,
    Unknown,
)


def _amps(hi_lo: bytes) -> str:
    # Hundredths of an amp, big-endian; %05.2f gives the original's 07.20 / 655.35.
    return "%05.2f" % (int.from_bytes(hi_lo, "big") / 100)


def _hex(data: bytes) -> str:
    return bytes(data).hex().upper()


def _heartbeat_fields(data: bytes) -> str:
    """`SS aa.aa/ll.llA 5566[ 7788]`: byte 0, bytes 3-4 / bytes 1-2, then the spare groups."""
    data = bytes(data).ljust(7, b"\x00")
    text = "%02X %s/%sA %s" % (data[0], _amps(data[3:5]), _amps(data[1:3]), _hex(data[5:7]))
    # Protocol 1 carries 7 data bytes: no 7-8 group.
    if len(data) >= 9:
        text += " " + _hex(data[7:9])
    return text


def heartbeat_line(slave_id: int, slave_data: bytes, master_data: bytes | None) -> str:
    """`SHB 032E: 01 07.20/08.00A 0000 0000  M: 09 00.00/08.00A 0000 0000`.

    For the master's data the same layout shows its bytes 3-4 as "actual" and 1-2 as "limit",
    as the original did.
    """
    line = "SHB %04X: %s" % (slave_id, _heartbeat_fields(slave_data))
    if master_data is not None:
        line += "  M: " + _heartbeat_fields(master_data)
    return line


def _type_hex(type_code: int) -> str:
    return "%04X" % type_code


def describe(msg: Message) -> str:
    """One human-readable line for any typed message (sniffer and debug logs)."""
    if isinstance(msg, MasterLinkready1):
        return "master linkready1 from %04X sign %02X" % (msg.sender_id, msg.sign)
    if isinstance(msg, MasterLinkready2):
        return "master linkready2 from %04X sign %02X" % (msg.sender_id, msg.sign)
    if isinstance(msg, SlaveLinkready):
        # A 20-byte linkready leaves the protocol unknown (None).
        protocol = "?" if msg.protocol is None else str(msg.protocol)
        return "slave linkready %04X sign %02X %05.2fA protocol %s" % (
            msg.sender_id,
            msg.sign,
            msg.max_amps,
            protocol,
        )
    if isinstance(msg, MasterHeartbeat):
        return "MHB %04X to %04X: %s" % (
            msg.sender_id,
            msg.receiver_id,
            _heartbeat_fields(msg.data),
        )
    if isinstance(msg, SlaveHeartbeat):
        return "SHB %04X to %04X: %s" % (
            msg.sender_id,
            msg.receiver_id,
            _heartbeat_fields(msg.data),
        )
    if isinstance(msg, KwhRequest):
        return "kWh request %04X to %04X" % (msg.sender_id, msg.receiver_id)
    if isinstance(msg, KwhReport):
        return "VRS %04X: %dkWh %dV %dV %dV" % (msg.sender_id, msg.kwh, *msg.volts)
    if isinstance(msg, MasterIdle):
        return "master idle (2 h)"
    if isinstance(msg, MasterIdle4h):
        return "master idle (4 h)"
    if isinstance(msg, DebugReply):
        if msg.type_code == DEBUG_FIRMWARE_REPLY:
            return "debug reply %s firmware %s" % (_type_hex(msg.type_code), msg.value)
        what = "serial" if msg.type_code == DEBUG_SERIAL_REPLY else "model"
        return "debug reply %s %s %r" % (_type_hex(msg.type_code), what, msg.value)
    if isinstance(msg, DebugRequest):
        return "debug request %s: %s" % (_type_hex(msg.type_code), _hex(msg.payload))
    if isinstance(msg, Unknown):
        return "unknown %s: %s" % (_type_hex(msg.type_code), _hex(msg.payload))
    return "%s: %s" % (type(msg).__name__, _hex(msg.to_body()))
