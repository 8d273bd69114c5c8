"""Console and log output: the original's line formats, one info line per state
change, a size-bounded log file."""
from __future__ import annotations

import io
import logging
from datetime import datetime

from TWCManager.twc import consolelog
from TWCManager.logsetup import ConsoleFormatter, setup_logging
from TWCManager.twc.messages import KwhReport, SlaveLinkready
from TWCManager.core.settings import Settings

from .test_master import harness, unit


def test_heartbeat_line_matches_the_original_p2():
    # Observed line, twc-protocol.md §11.2.
    line = consolelog.heartbeat_line(0x032E, bytes.fromhex("01 0320 02D0 0000 0000"),
                                     bytes.fromhex("09 0320 0000 0000 0000"))
    assert line == "SHB 032E: 01 07.20/08.00A 0000 0000  M: 09 00.00/08.00A 0000 0000"


def test_heartbeat_line_p1_has_no_second_group():
    line = consolelog.heartbeat_line(0x032E, bytes.fromhex("03 0258 0019 0000"),
                                     bytes.fromhex("05 0000 0000 0000"))
    assert line == "SHB 032E: 03 00.25/06.00A 0000  M: 05 00.00/00.00A 0000"


def test_describe_names_the_message():
    assert "032E" in consolelog.describe(SlaveLinkready(0x032E, 1, 80.0, 1))
    vrs = consolelog.describe(KwhReport(0x7777, 119, (240, 0, 0), 16))
    assert vrs.startswith("VRS 7777: 119kWh 240V")


def test_console_formatter_prefixes_time_and_level():
    fmt = ConsoleFormatter()
    record = logging.LogRecord("TWCManager", logging.ERROR, __file__, 1, "Checksum bad", None,
                               None)
    record.created = datetime(2026, 11, 21, 14, 3, 9).timestamp()
    assert fmt.format(record) == "14:03:09: ERROR: Checksum bad"
    record.levelno, record.levelname = logging.INFO, "INFO"
    assert fmt.format(record) == "14:03:09: Checksum bad"


def test_one_info_line_per_state_change(caplog):
    caplog.set_level(logging.INFO, logger="TWCManager")
    h = harness([unit()], settings=Settings(non_scheduled_amps=20))
    h.run_for(120)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    beats = len(h.heartbeats_to(0x032E))
    assert beats > 100
    # a handful of changes (new slave, states, offers, pool), not a line per heartbeat
    assert 3 <= len(info) <= 20, info
    assert any(m.startswith("New slave 032E") for m in info)
    assert any("Offer to 032E: 21 A" in m for m in info)


def test_debug_level_shows_shb_lines(caplog):
    caplog.set_level(logging.DEBUG, logger="TWCManager")
    h = harness([unit()], settings=Settings(non_scheduled_amps=20))
    h.run_for(10)
    shb = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SHB 032E: ")]
    assert len(shb) >= 8


def test_log_file_is_size_bounded(tmp_path):
    path = tmp_path / "twcmanager.log"
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        setup_logging(logging.INFO, str(path), max_bytes=2000, backups=2, stream=io.StringIO())
        logger = logging.getLogger("TWCManager.test")
        for i in range(500):
            logger.info("line %d %s", i, "x" * 40)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["twcmanager.log", "twcmanager.log.1", "twcmanager.log.2"]
    assert all((tmp_path / f).stat().st_size <= 2100 for f in files)
    assert "line 499" in path.read_text()
