"""The original key=value settings file: format, tolerant load, atomic save (decisions §4.2, §4.14)."""

import errno
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from TWCManager import settings_file as sm
from TWCManager.core import settings as domain
from TWCManager.core.settings import Settings
from TWCManager.settings_file import (SettingsSaveError, format_settings, load_settings,
                                      parse_settings, save_settings)

REPO_ROOT = Path(__file__).resolve().parent.parent

# The observed file of original-program.md §7, byte for byte (no newline after the last line).
ORIGINAL_EXAMPLE = (
    "nonScheduledAmpsMax=8\n"
    "scheduledAmpsMax=16\n"
    "scheduledAmpsStartHour=21.0\n"
    "scheduledAmpsEndHour=7.0\n"
    "scheduledAmpsDaysBitmap=127\n"
    "hourResumeTrackGreenEnergy=6.5\n"
    "kWhDelivered=119\n"
    "carApiBearerToken=\n"
    "carApiRefreshToken=\n"
    "carApiTokenExpireTime=1795292223\n"
    "homeLat=10000\n"
    "homeLon=10000"
)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- the original's file ----------------------------------------------------------------------

def test_original_example_loads(tmp_path):
    path = write_bytes(tmp_path / "TWCManagerSettings.txt", ORIGINAL_EXAMPLE.encode())
    s, problems = load_settings(path)
    assert problems == []
    assert s.non_scheduled_amps == 8
    assert s.scheduled_amps == 16
    assert s.scheduled_start_min == 1260   # 21.0 h
    assert s.scheduled_end_min == 420      # 7.0 h
    assert s.scheduled_days_bitmap == 127
    assert s.resume_green_min == 390       # 6.5 h
    assert s.kwh_delivered == 119
    assert s.charge_now_amps == 0.0 and s.charge_now_until_at_wall == 0.0
    assert list(s.extra.items()) == [
        ("carApiBearerToken", ""), ("carApiRefreshToken", ""),
        ("carApiTokenExpireTime", "1795292223"), ("homeLat", "10000"), ("homeLon", "10000"),
    ]


def test_original_example_written_back_unchanged_plus_new_keys(tmp_path):
    path = write_bytes(tmp_path / "s.txt", ORIGINAL_EXAMPLE.encode())
    s, _ = load_settings(path)
    save_settings(path, s)
    assert path.read_bytes() == (ORIGINAL_EXAMPLE + "\nchargeNowAmps=0.0\nchargeNowTimeEnd=0.0").encode()


def test_defaults_match_the_original():
    s = Settings()
    assert (s.non_scheduled_amps, s.scheduled_amps, s.scheduled_start_min, s.scheduled_end_min,
            s.scheduled_days_bitmap, s.resume_green_min, s.kwh_delivered) == (-1, -1, -1, -1, 127, -1, 119)
    assert s.charge_now_amps == 0 and s.charge_now_until_at_wall == 0 and s.extra == {}


def test_written_format_is_byte_exact(tmp_path):
    s = Settings(
        non_scheduled_amps=0, scheduled_amps=32,
        scheduled_start_min=6 * 60 + 20, scheduled_end_min=23 * 60 + 59,
        scheduled_days_bitmap=0b0111110, resume_green_min=0, kwh_delivered=5,
        charge_now_amps=16, charge_now_until_at_wall=1700000000.5,
        extra={"zzUnknown": "x y", "homeLon": "8.5", "carApiBearerToken": "tok"},
    )
    path = tmp_path / "s.txt"
    save_settings(path, s)
    expected = (
        "nonScheduledAmpsMax=0\n"
        "scheduledAmpsMax=32\n"
        "scheduledAmpsStartHour=6.333333333333333\n"      # str(380 / 60)
        "scheduledAmpsEndHour=23.983333333333334\n"       # str(1439 / 60)
        "scheduledAmpsDaysBitmap=62\n"
        "hourResumeTrackGreenEnergy=0.0\n"
        "kWhDelivered=5\n"
        "carApiBearerToken=tok\n"
        "carApiRefreshToken=\n"
        "carApiTokenExpireTime=0\n"
        "homeLat=10000\n"
        "homeLon=8.5\n"
        "chargeNowAmps=16.0\n"
        "chargeNowTimeEnd=1700000000.5\n"
        "zzUnknown=x y"
    )
    assert path.read_bytes() == expected.encode()
    assert not path.read_bytes().endswith(b"\n")
    loaded, problems = load_settings(path)
    assert problems == ["line 15: unknown setting zzUnknown, kept as is"]
    assert loaded.extra == {"carApiBearerToken": "tok", "carApiRefreshToken": "",
                            "carApiTokenExpireTime": "0", "homeLat": "10000", "homeLon": "8.5",
                            "zzUnknown": "x y"}
    loaded.extra = s.extra
    assert loaded == s


def test_defaults_written_format():
    assert format_settings(Settings()) == (
        "nonScheduledAmpsMax=-1\nscheduledAmpsMax=-1\nscheduledAmpsStartHour=-1.0\n"
        "scheduledAmpsEndHour=-1.0\nscheduledAmpsDaysBitmap=127\nhourResumeTrackGreenEnergy=-1.0\n"
        "kWhDelivered=119\ncarApiBearerToken=\ncarApiRefreshToken=\ncarApiTokenExpireTime=0\n"
        "homeLat=10000\nhomeLon=10000\nchargeNowAmps=0.0\nchargeNowTimeEnd=0.0"
    )


def test_integral_floats_in_int_fields_are_written_as_ints():
    text = format_settings(Settings(non_scheduled_amps=8.0, scheduled_days_bitmap=3.0))
    assert "nonScheduledAmpsMax=8\n" in text and "scheduledAmpsDaysBitmap=3\n" in text


def test_every_minute_of_the_day_survives():
    for minute in range(24 * 60):
        text = format_settings(Settings(scheduled_start_min=minute, scheduled_end_min=minute,
                                        resume_green_min=minute))
        loaded, problems = parse_settings(text)
        assert problems == []
        assert (loaded.scheduled_start_min, loaded.scheduled_end_min, loaded.resume_green_min) \
            == (minute, minute, minute)
        # The original computed hours as hour + minute / 60; such a value maps to the same minute.
        original = f"scheduledAmpsStartHour={minute // 60 + (minute % 60) / 60}"
        assert parse_settings(original)[0].scheduled_start_min == minute


@pytest.mark.parametrize("text, minutes", [
    ("-1", -1), ("-1.0", -1), ("0", 0), ("0.0", 0), ("6.5", 390), ("21", 1260),
    ("23.99", 1439), ("6.333", 380), ("1e1", 600),
])
def test_hour_values_accepted(text, minutes):
    s, problems = parse_settings(f"hourResumeTrackGreenEnergy={text}")
    assert problems == [] and s.resume_green_min == minutes


@pytest.mark.parametrize("text", ["24.0", "25.0", "-2", "-0.5", "23.999", "nan", "inf", "abc", "", "6:20"])
def test_hour_values_refused(text):
    s, problems = parse_settings(f"scheduledAmpsEndHour=5.0\nscheduledAmpsEndHour={text}")
    assert s.scheduled_end_min == 300       # the earlier valid line stays
    assert len(problems) == 2                # the duplicate, and the bad value
    assert "scheduledAmpsEndHour" in problems[1] and "earlier value 300" in problems[1]


# --- round trip -------------------------------------------------------------------------------

_time = st.one_of(st.just(-1), st.integers(0, 24 * 60 - 1))
_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30,
).filter(lambda v: v == v.strip())
_key = st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True).filter(lambda k: k not in sm.KNOWN_KEYS)
_passthrough = st.sampled_from(sorted(sm.PASSTHROUGH_DEFAULTS))

valid_settings = st.builds(
    Settings,
    non_scheduled_amps=st.integers(-1, domain.AMPS_MAX),
    scheduled_amps=st.integers(-1, domain.AMPS_MAX),
    scheduled_start_min=_time, scheduled_end_min=_time,
    scheduled_days_bitmap=st.integers(0, 127),
    resume_green_min=_time,
    kwh_delivered=st.integers(0, 10**12),
    charge_now_amps=st.floats(0, domain.AMPS_MAX, allow_nan=False),
    charge_now_until_at_wall=st.floats(0, 4e9, allow_nan=False),
    extra=st.dictionaries(st.one_of(_passthrough, _key), _value, max_size=6),
)


@hsettings(max_examples=300, deadline=None)
@given(valid_settings)
def test_save_load_round_trip(s):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "settings.txt"
        save_settings(path, s)
        loaded, problems = load_settings(path)
    assert loaded == Settings(**{**s.__dict__, "extra": {
        **{k: s.extra.get(k, v) for k, v in sm.PASSTHROUGH_DEFAULTS.items()}, **s.extra}})
    assert all("unknown setting" in p for p in problems)


# --- tolerant load ----------------------------------------------------------------------------

def test_missing_file_gives_defaults_without_problems(tmp_path):
    assert load_settings(tmp_path / "nope" / "s.txt") == (Settings(), [])


def test_empty_file_is_reported(tmp_path):
    s, problems = load_settings(write_bytes(tmp_path / "s.txt", b""))
    assert s == Settings() and problems == ["file is empty; using defaults"]


def test_corrupt_file_loads_what_it_can(tmp_path):
    data = (
        b"nonScheduledAmpsMax=12.5\n"          # non-integral amps: refused, default kept
        b"\xff\xfe\x00garbage\x80\n"            # binary garbage line
        b"scheduledAmpsMax=16\n"
        b"scheduledAmpsStartHour=abc\n"
        b"scheduledAmpsEndHour=25.0\n"
        b"scheduledAmpsDaysBitmap=300\n"
        b"  hourResumeTrackGreenEnergy =  6.5  \r\n"   # spaces and CRLF are tolerated
        b"carApiBearerToken=\n"                 # empty token: fine
        b"myOwnKey=kept\n"                      # unknown: kept for the next save
        b"kWhDelivered=100\n"
        b"kWhDelivered=120\n"                   # duplicate: last wins
        b"\x00\x00\x00\n"
        b"\n"
        b"homeLat=52.1\xe9\n"                   # undecodable byte inside a value
        b"chargeNowAmps=16.0\n"
        b"chargeNowTimeEnd=17000"               # truncated mid-line: still a number
        b"\nscheduledAmpsDa"                    # truncated mid-key
    )
    path = write_bytes(tmp_path / "s.txt", data)
    s, problems = load_settings(path)
    assert s.non_scheduled_amps == -1
    assert s.scheduled_amps == 16
    assert s.scheduled_start_min == -1 and s.scheduled_end_min == -1
    assert s.scheduled_days_bitmap == 127
    assert s.resume_green_min == 390
    assert s.kwh_delivered == 120
    assert s.charge_now_amps == 16.0 and s.charge_now_until_at_wall == 17000.0
    assert s.extra["carApiBearerToken"] == ""
    assert s.extra["myOwnKey"] == "kept"
    assert s.extra["homeLat"] == "52.1\ufffd"
    joined = "\n".join(problems)
    for expected in ("line 1: nonScheduledAmpsMax='12.5'", "line 2: not a key=value",
                     "line 4: scheduledAmpsStartHour='abc'", "line 5: scheduledAmpsEndHour='25.0'",
                     "line 6: scheduledAmpsDaysBitmap='300'", "line 9: unknown setting myOwnKey",
                     "line 11: kWhDelivered also set on line 10; the last valid value is used", "line 12: not a key=value",
                     "line 17: not a key=value"):
        assert expected in joined
    assert len(problems) == 9
    assert "keeping the default -1" in problems[0]


def test_random_garbage_never_raises(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "s.txt"
    valid = format_settings(Settings(non_scheduled_amps=7)).encode()
    for _ in range(300):
        cut = valid[: rng.randrange(len(valid) + 1)]
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        pos = rng.randrange(len(cut) + 1)
        write_bytes(path, cut[:pos] + noise + cut[pos:])
        s, problems = load_settings(path)
        assert isinstance(s, Settings) and isinstance(problems, list)


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data):
    s, problems = parse_settings(data.decode("utf-8", errors="replace"))
    assert isinstance(s, Settings)
    assert all(isinstance(p, str) for p in problems)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(sorted(sm.KNOWN_KEYS) + ["other"]).map(lambda k: k + "="),
    st.binary(max_size=12).map(lambda b: b.decode("utf-8", errors="replace")),
    st.sampled_from(["\r", "\n", " ", "=", "\x00", "12.5", "-1", "6.5"])), max_size=30))
def test_whatever_loads_can_be_saved_again(parts):
    # A garbage byte in one line must never make every later save fail.
    loaded, _ = parse_settings("".join(parts))
    again, problems = parse_settings(format_settings(loaded))
    assert again == Settings(**{**loaded.__dict__, "extra": again.extra})
    assert all("unknown setting" in p for p in problems)


def test_carriage_return_inside_a_value_is_dropped():
    s, problems = parse_settings("carApiBearerToken=ab\rcd\nhomeLat=1")
    assert "carApiBearerToken" not in s.extra and s.extra["homeLat"] == "1"
    assert len(problems) == 1 and "line 1" in problems[0]
    format_settings(s)


def test_byte_order_mark_is_ignored(tmp_path):
    s, problems = load_settings(write_bytes(tmp_path / "s.txt", b"\xef\xbb\xbfnonScheduledAmpsMax=8"))
    assert problems == [] and s.non_scheduled_amps == 8


@pytest.mark.parametrize("line", [
    "nonScheduledAmpsMax=-2", "nonScheduledAmpsMax=241", "nonScheduledAmpsMax=0x10",
    "scheduledAmpsMax=1_000", "scheduledAmpsDaysBitmap=-1", "scheduledAmpsDaysBitmap=128",
    "kWhDelivered=-5", "chargeNowAmps=-1", "chargeNowAmps=nan", "chargeNowTimeEnd=-3",
])
def test_out_of_range_values_keep_defaults(line):
    s, problems = parse_settings(line)
    assert s == Settings()
    assert len(problems) == 1 and "is invalid" in problems[0] and "keeping the default" in problems[0]


def test_integral_float_amps_accepted_and_fractional_kwh_truncated():
    s, problems = parse_settings("nonScheduledAmpsMax=12.0\nkWhDelivered=119.0\nscheduledAmpsMax=-1")
    assert problems == [] and s.non_scheduled_amps == 12 and s.kwh_delivered == 119
    s, problems = parse_settings("kWhDelivered=123.7")
    assert problems == [] and s.kwh_delivered == 123


def test_problems_are_logged_with_the_file_name(tmp_path, caplog):
    path = write_bytes(tmp_path / "mysettings.txt", b"scheduledAmpsMax=abc")
    with caplog.at_level(logging.WARNING, logger="TWCManager.settings"):
        _, problems = load_settings(path)
    assert len(problems) == 1
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(records) == 1
    assert str(path) in records[0].getMessage() and "scheduledAmpsMax" in records[0].getMessage()


def test_unreadable_path_gives_defaults_and_a_problem(tmp_path):
    path = tmp_path / "s.txt"
    path.mkdir()  # a directory where the file should be
    s, problems = load_settings(path)
    assert s == Settings() and len(problems) == 1 and "cannot read" in problems[0]


def test_oversized_file_is_refused_with_one_line(tmp_path, caplog):
    # A 10 MB file of junk lines once gave 1 048 576 warnings (109 MB of log) and a 6 s start.
    data = b"nonScheduledAmpsMax=9\n" + b"junk\n" * (2 * 1024 * 1024)
    path = write_bytes(tmp_path / "s.txt", data)
    with caplog.at_level(logging.WARNING, logger="TWCManager.settings"):
        s, problems = load_settings(path)
    assert s == Settings()
    assert len(problems) == 1 and "larger than 64 KiB" in problems[0] and "not read" in problems[0]
    assert len(caplog.records) == 1
    assert path.read_bytes() == data  # left as it was


def test_a_file_just_under_the_cap_is_read(tmp_path):
    data = b"nonScheduledAmpsMax=9\n" + b"#" * (sm.MAX_FILE_BYTES - 30)
    s, problems = load_settings(write_bytes(tmp_path / "s.txt", data))
    assert s.non_scheduled_amps == 9 and len(problems) == 1


def test_many_bad_lines_are_listed_up_to_ten_then_counted(tmp_path, caplog):
    lines = [f"junk line {i}" for i in range(3000)]
    path = write_bytes(tmp_path / "s.txt", ("nonScheduledAmpsMax=9\n" + "\n".join(lines)).encode())
    with caplog.at_level(logging.WARNING, logger="TWCManager.settings"):
        s, problems = load_settings(path)
    assert s.non_scheduled_amps == 9
    assert len(problems) == sm.MAX_PROBLEMS_LISTED + 1
    assert problems[0].startswith("line 2: not a key=value") and "junk line 0" in problems[0]
    assert problems[-1] == "... and 2990 more problems in this file, not listed"
    assert len(caplog.records) == sm.MAX_PROBLEMS_LISTED + 1


def test_the_daemon_logs_each_settings_problem_once(tmp_path, caplog):
    from TWCManager.config import load_config
    from TWCManager.daemon import Daemon

    path = write_bytes(tmp_path / "s.txt", b"scheduledAmpsMax=abc\nnonScheduledAmpsMax=9")
    cfg = load_config(None, {"settings.file": str(path), "twc.serial_port": str(tmp_path / "none")})
    with caplog.at_level(logging.WARNING):
        daemon = Daemon(cfg, with_ipc=False)
    assert daemon.site.settings.non_scheduled_amps == 9
    assert len([r for r in caplog.records if "scheduledAmpsMax" in r.getMessage()]) == 1


# --- private values ---------------------------------------------------------------------------

SECRETS = {"carApiBearerToken": "eyJhbGciOiJTOKEN1", "carApiRefreshToken": "REFRESH-SECRET-2",
           "homeLat": "48.8566123", "homeLon": "2.3522456", "myApiPassword": "hunter2hunter2"}


@pytest.mark.parametrize("key", sorted(SECRETS))
def test_private_keys_are_recognised(key):
    assert domain.is_private_key(key)


@pytest.mark.parametrize("key", ["nonScheduledAmpsMax", "kWhDelivered", "myOwnKey", "carColour"])
def test_ordinary_keys_are_shown(key):
    assert not domain.is_private_key(key)


def test_shown_settings_hide_secrets_and_the_file_keeps_them(tmp_path):
    text = ORIGINAL_EXAMPLE.replace("carApiBearerToken=", "carApiBearerToken=" +
                                    SECRETS["carApiBearerToken"])
    text = text.replace("carApiRefreshToken=", "carApiRefreshToken=" + SECRETS["carApiRefreshToken"])
    text = text.replace("homeLat=10000", "homeLat=" + SECRETS["homeLat"])
    text = text.replace("homeLon=10000", "homeLon=" + SECRETS["homeLon"])
    text += "\nmyApiPassword=" + SECRETS["myApiPassword"] + "\nmyOwnKey=visible"
    path = write_bytes(tmp_path / "s.txt", text.encode())
    s, _ = load_settings(path)
    shown = domain.shown_settings(s)
    for secret in SECRETS.values():
        assert secret not in shown
    assert "'carApiBearerToken': '[hidden]'" in shown and "'myOwnKey': 'visible'" in shown
    assert "non_scheduled_amps=8" in shown
    save_settings(path, s)
    saved = path.read_text()
    for key, secret in SECRETS.items():
        assert f"{key}={secret}" in saved


def test_problems_never_show_private_values(tmp_path, caplog):
    data = ("carApiBearerToken=" + SECRETS["carApiBearerToken"] + "\n"
            "carApiBearerToken=" + SECRETS["carApiBearerToken"] + " \r" + "\n"
            "homeLat " + SECRETS["homeLat"] + "\n").encode()
    with caplog.at_level(logging.WARNING, logger="TWCManager.settings"):
        _, problems = load_settings(write_bytes(tmp_path / "s.txt", data))
    assert len(problems) >= 2
    logged = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(problems)
    assert SECRETS["carApiBearerToken"] not in logged and SECRETS["homeLat"] not in logged


# --- atomic save ------------------------------------------------------------------------------

def test_save_creates_the_directory(tmp_path):
    path = tmp_path / "a" / "b" / "s.txt"
    save_settings(path, Settings(non_scheduled_amps=3))
    assert load_settings(path) == (Settings(non_scheduled_amps=3, extra=dict(sm.PASSTHROUGH_DEFAULTS)), [])
    assert temp_files(path.parent) == []


def test_save_keeps_the_mode_of_an_existing_file(tmp_path):
    path = tmp_path / "s.txt"
    save_settings(path, Settings())
    os.chmod(path, 0o600)
    save_settings(path, Settings(non_scheduled_amps=4))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _old_file(tmp_path) -> tuple[Path, bytes]:
    path = tmp_path / "s.txt"
    save_settings(path, Settings(non_scheduled_amps=8))
    return path, path.read_bytes()


def test_full_disk_on_write_keeps_old_file(tmp_path, monkeypatch):
    path, before = _old_file(tmp_path)

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(sm.os, "write", full)
    with pytest.raises(SettingsSaveError, match="No space left on device.*previous file is unchanged"):
        save_settings(path, Settings(non_scheduled_amps=16))
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_partial_write_then_full_disk_keeps_old_file(tmp_path, monkeypatch):
    path, before = _old_file(tmp_path)
    real_write = os.write
    calls = []

    def half_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(sm.os, "write", half_then_full)
    with pytest.raises(SettingsSaveError):
        save_settings(path, Settings(non_scheduled_amps=16))
    assert len(calls) == 2  # the short write was continued, then failed
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_fsync_failure_keeps_old_file(tmp_path, monkeypatch):
    path, before = _old_file(tmp_path)

    def fail(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    monkeypatch.setattr(sm.os, "fsync", fail)
    with pytest.raises(SettingsSaveError, match="Input/output error"):
        save_settings(path, Settings(non_scheduled_amps=16))
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_cannot_create_temp_file_keeps_old_file(tmp_path, monkeypatch):
    # What a read-only directory does; simulated so that it also holds when tests run as root.
    path, before = _old_file(tmp_path)
    real_open = os.open

    def refuse(p, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(p))
        return real_open(p, flags, *args, **kwargs)
    monkeypatch.setattr(sm.os, "open", refuse)
    with pytest.raises(SettingsSaveError, match=f"cannot create a file in {tmp_path}.*Read-only"):
        save_settings(path, Settings(non_scheduled_amps=16))
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_read_only_directory_keeps_old_file(tmp_path):
    path, before = _old_file(tmp_path)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(SettingsSaveError, match="Permission denied"):
            save_settings(path, Settings(non_scheduled_amps=16))
    finally:
        os.chmod(tmp_path, 0o755)
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_rename_failure_removes_temp_file(tmp_path):
    path = tmp_path / "s.txt"
    path.mkdir()
    (path / "keep").write_text("x")
    with pytest.raises(SettingsSaveError, match=str(path)):
        save_settings(path, Settings())
    assert (path / "keep").read_text() == "x"
    assert temp_files(tmp_path) == []


def test_cannot_create_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsSaveError, match="cannot create directory"):
        save_settings(blocker / "sub" / "s.txt", Settings())


@pytest.mark.parametrize("bad", [
    Settings(scheduled_start_min=24 * 60), Settings(resume_green_min=-5),
    Settings(non_scheduled_amps=12.5), Settings(scheduled_days_bitmap=200),
    Settings(charge_now_amps=float("nan")), Settings(non_scheduled_amps=True),
    Settings(scheduled_start_min=True), Settings(kwh_delivered="5"), Settings(charge_now_amps=None),
    Settings(extra={"carApiBearerToken": "a\nnonScheduledAmpsMax=40"}),
    Settings(extra={"bad key": "x"}), Settings(extra={"k": " padded "}),
    Settings(extra={"k": "\udcff"}),
])
def test_values_that_would_not_load_back_are_refused(tmp_path, bad):
    path, before = _old_file(tmp_path)
    with pytest.raises(SettingsSaveError, match="settings not saved"):
        save_settings(path, bad)
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_known_keys_in_extra_do_not_override_fields():
    text = format_settings(Settings(non_scheduled_amps=5, extra={"nonScheduledAmpsMax": "40"}))
    assert text.count("nonScheduledAmpsMax") == 1 and "nonScheduledAmpsMax=5\n" in text


def test_stale_temp_files_are_removed_on_save(tmp_path):
    path = tmp_path / "s.txt"
    old = tmp_path / ".s.txt.123.abcd.tmp"
    young = tmp_path / ".s.txt.456.ef01.tmp"
    other = tmp_path / ".other.txt.1.2.tmp"
    for p in (old, young, other):
        p.write_text("partial")
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    save_settings(path, Settings())
    assert not old.exists()
    assert young.exists() and other.exists()  # maybe another process's save in progress / not ours


def test_directory_fsync_failure_is_only_logged(tmp_path, monkeypatch, caplog):
    path = tmp_path / "s.txt"
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)
    monkeypatch.setattr(sm.os, "fsync", fsync)
    with caplog.at_level(logging.WARNING, logger="TWCManager.settings"):
        save_settings(path, Settings(non_scheduled_amps=2))
    assert load_settings(path)[0].non_scheduled_amps == 2
    assert "could not be synced" in caplog.text


# --- killed during a save ---------------------------------------------------------------------

_SAVER = r"""
import sys
from TWCManager.core.settings import Settings
from TWCManager.settings_file import save_settings
path = sys.argv[1]
# Large (near the 64 KiB a settings file may have), distinct versions, so a kill often lands in
# the middle of writing one.
a = Settings(non_scheduled_amps=8, scheduled_amps=16, scheduled_start_min=1260,
             scheduled_end_min=420, resume_green_min=390, kwh_delivered=1,
             extra={"carApiBearerToken": "A" * 60000})
b = Settings(non_scheduled_amps=0, scheduled_amps=32, scheduled_start_min=380,
             scheduled_end_min=1439, scheduled_days_bitmap=62, kwh_delivered=2,
             charge_now_amps=16.0, charge_now_until_at_wall=1700000000.5,
             extra={"carApiRefreshToken": "B" * 45000, "homeLat": "52.5"})
n = 0
while True:
    save_settings(path, a if n % 2 == 0 else b)
    n += 1
"""


def _versions() -> list[Settings]:
    namespace: dict = {}
    exec(_SAVER.split("n = 0")[0].replace("path = sys.argv[1]", ""), namespace)
    return [load_settings_from_text(format_settings(namespace[v])) for v in ("a", "b")]


def load_settings_from_text(text: str) -> Settings:
    s, problems = parse_settings(text)
    assert problems == []
    return s


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_killed_during_save_never_leaves_a_broken_file(tmp_path):
    versions = _versions()
    path = tmp_path / "TWCManagerSettings.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rng = random.Random(20240601)
    seen = set()
    for attempt in range(8):
        before = path.stat().st_mtime_ns if path.exists() else None
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], env=env, cwd=tmp_path)
        try:
            # Wait until this process has written at least once, then kill it at a random moment.
            assert _wait_until(lambda: proc.poll() is not None
                               or (path.exists() and path.stat().st_mtime_ns != before), 10.0), \
                "the saver never wrote the file"
            assert proc.poll() is None, "the saver exited on its own (see its stderr)"
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        loaded, problems = load_settings(path)
        assert problems == [], f"attempt {attempt}: {problems}"
        assert loaded in versions
        seen.add(versions.index(loaded))
        # Leftovers of the killed save are hidden temp files that can never be taken for the file.
        for name in os.listdir(tmp_path):
            if name != path.name:
                assert name.startswith("." + path.name + ".") and name.endswith(".tmp"), name
    assert seen  # at least one version was read back (usually both)


def test_a_file_that_would_not_load_back_is_not_written(tmp_path):
    # Over the load cap it would be refused at the next start: every setting lost.
    path = tmp_path / "s.txt"
    save_settings(path, Settings(non_scheduled_amps=8))
    with pytest.raises(SettingsSaveError, match="64 KiB"):
        save_settings(path, Settings(extra={"myNote": "x" * sm.MAX_FILE_BYTES}))
    assert load_settings(path)[0].non_scheduled_amps == 8
