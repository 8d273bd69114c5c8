"""The settings stored in the original TWCManager settings file (``TWCManagerSettings.txt``):
tolerant load, atomic save. The object itself is `core.settings.Settings`.

Format (original-program.md §7): ``key=value`` lines joined by ``\\n``, no trailing newline, keys in
a fixed order. An old file can be copied over unchanged, and a file we write can be read by the
original. Times are kept as minutes since midnight (decisions §4.2) but written as the original's
float hours, e.g. 6:20 -> ``6.333333333333333``; ``round(hours * 60)`` gets the minute back.

Two keys are new (decisions §4.14): ``chargeNowAmps`` and ``chargeNowTimeEnd`` (unix seconds), so
charge-now survives a restart. The original ignores keys it does not know.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from .core.settings import AMPS_MAX, DAYS_ALL, HIDDEN, MINUTES_PER_DAY, Settings, is_private_key

log = logging.getLogger("TWCManager.settings")

# A settings file is well under 1 kB: a file 64 times the largest one anybody writes is not a
# settings file (a 10 MB file of junk lines once gave a million warnings and a 6 s start).
MAX_FILE_BYTES = 64 << 10
# Problems listed one by one; the rest of a corrupt file is summed up in one more line.
MAX_PROBLEMS_LISTED = 10
# Leftover temp files (from a process killed mid-save) older than this are removed on save.
STALE_TEMP_S = 60.0

# Keys the original wrote but we only carry along, with what we write when they were never read.
# carApiTokenExpireTime defaulted to the start time in the original; 0 (expired) is deterministic
# and harmless because we do not use the car API. 10000 is the original's "home unknown".
PASSTHROUGH_DEFAULTS: dict[str, str] = {
    "carApiBearerToken": "",
    "carApiRefreshToken": "",
    "carApiTokenExpireTime": "0",
    "homeLat": "10000",
    "homeLon": "10000",
}


class SettingsSaveError(Exception):
    """The settings could not be written; the previous file (if any) is unchanged."""


# --- value codecs -----------------------------------------------------------------------------

# Plain decimal numbers only: no "nan", "inf", "0x10" or "1_000" (float() would take some of those).
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_LINE_RE = re.compile(r"^\s*([^=]*?)\s*=\s*(.*?)\s*$")


def _number(text: str) -> float:
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError("not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _whole(text: str) -> int:
    # "12" and "12.0" are fine; "12.5" is refused (the original crashed on it).
    value = _number(text)
    if value != int(value):
        raise ValueError("not a whole number")
    return int(value)


def hours_to_minutes(hours: float) -> int:
    return round(hours * 60)


def minutes_to_hours_text(minutes: int) -> str:
    # The original wrote str() of float hours; -1 stays -1.0.
    return str(minutes / 60) if minutes >= 0 else "-1.0"


def _int_text(value: int) -> str:
    # Ints are written without a decimal point, as the original's str() of an int.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _parse_amps(text: str) -> int:
    value = _whole(text)
    if not -1 <= value <= AMPS_MAX:
        raise ValueError(f"outside -1..{AMPS_MAX}")
    return value


def _parse_time(text: str) -> int:
    hours = _number(text)
    if hours == -1:
        return -1
    minutes = hours_to_minutes(hours)
    if not (hours >= 0 and 0 <= minutes < MINUTES_PER_DAY):
        raise ValueError("not an hour of the day (0 <= hours < 24, or -1 for unset)")
    return minutes


def _parse_days(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= DAYS_ALL:
        raise ValueError("outside 0..127")
    return value


def _parse_kwh(text: str) -> int:
    # The original kept kWh as a float; a fraction is not corruption, so it is truncated quietly.
    value = _number(text)
    if value < 0:
        raise ValueError("negative")
    return int(value)


def _parse_charge_now_amps(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= AMPS_MAX:
        raise ValueError(f"outside 0..{AMPS_MAX}")
    return value


def _parse_goal_kwh(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= GOAL_KWH_MAX:
        raise ValueError(f"outside 0..{GOAL_KWH_MAX}")
    return value


GREEN_MODES = ("", "solar", "cheapest")


def _parse_green_mode(text: str) -> str:
    if text not in GREEN_MODES:
        raise ValueError("expected solar or cheapest")
    return text


def _parse_wall_time(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise ValueError("negative")
    return value


GOAL_KWH_MAX = 200      # more than any car's battery

# File key -> (attribute, parser, writer). Order is the file order (original-program.md §7),
# with the pass-through keys inserted after kWhDelivered and the new keys at the end.
_FIELDS: dict[str, tuple[str, Callable[[str], object], Callable[[object], str]]] = {
    "nonScheduledAmpsMax": ("non_scheduled_amps", _parse_amps, _int_text),
    "scheduledAmpsMax": ("scheduled_amps", _parse_amps, _int_text),
    "scheduledAmpsStartHour": ("scheduled_start_min", _parse_time, minutes_to_hours_text),
    "scheduledAmpsEndHour": ("scheduled_end_min", _parse_time, minutes_to_hours_text),
    "scheduledAmpsDaysBitmap": ("scheduled_days_bitmap", _parse_days, _int_text),
    "hourResumeTrackGreenEnergy": ("resume_green_min", _parse_time, minutes_to_hours_text),
    "kWhDelivered": ("kwh_delivered", _parse_kwh, _int_text),
    "chargeNowAmps": ("charge_now_amps", _parse_charge_now_amps, lambda v: str(float(v))),
    "chargeNowTimeEnd": ("charge_now_until_at_wall", _parse_wall_time, lambda v: str(float(v))),
    "chargeGoalKwh": ("charge_goal_kwh", _parse_goal_kwh, lambda v: str(float(v))),
    "chargeGoalBy": ("charge_goal_by_at_wall", _parse_wall_time, lambda v: str(float(v))),
    "chargeGoalDoneKwh": ("charge_goal_done_kwh", _parse_goal_kwh, lambda v: str(float(v))),
    "greenMode": ("green_mode", _parse_green_mode, str),
}
_ORIGINAL_ORDER = [
    "nonScheduledAmpsMax", "scheduledAmpsMax", "scheduledAmpsStartHour", "scheduledAmpsEndHour",
    "scheduledAmpsDaysBitmap", "hourResumeTrackGreenEnergy", "kWhDelivered",
    *PASSTHROUGH_DEFAULTS, "chargeNowAmps", "chargeNowTimeEnd",
    "chargeGoalKwh", "chargeGoalBy", "chargeGoalDoneKwh", "greenMode",
]
KNOWN_KEYS = frozenset(_ORIGINAL_ORDER)
# Written only while a charge goal is set: a file of a user without one stays as it was.
GOAL_KEYS = frozenset({"chargeGoalKwh", "chargeGoalBy", "chargeGoalDoneKwh"})


# --- load -------------------------------------------------------------------------------------

def parse_settings(text: str) -> tuple[Settings, list[str]]:
    """Parse file content. Never raises; each bad line keeps what was there and adds a problem."""
    settings = Settings()
    defaults = Settings()
    problems = _Problems()
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        m = _LINE_RE.match(raw)
        if not m or not _KEY_RE.fullmatch(m.group(1)):
            problems.append(f"line {lineno}: not a key=value setting, ignored: "
                            f"{HIDDEN if is_private_key(raw) else _show(raw)}")
            continue
        key, value = m.group(1), m.group(2)
        shown = f"{key}={HIDDEN}" if is_private_key(key) else _show(raw)
        if key in seen:
            problems.append(f"line {lineno}: {key} also set on line {seen[key]}; "
                            "the last valid value is used")
        seen[key] = lineno
        if key in _FIELDS:
            attr, parse, _ = _FIELDS[key]
            try:
                setattr(settings, attr, parse(value))
            except ValueError as e:
                kept = getattr(settings, attr)
                why = "default" if kept == getattr(defaults, attr) else "earlier value"
                problems.append(f"line {lineno}: {key}={_show(value)} is invalid ({e}); "
                                f"keeping the {why} {kept}")
            continue
        try:
            _check_extra(key, value)  # whatever we load must be savable again
        except ValueError as e:
            problems.append(f"line {lineno}: {e}; ignored: {shown}")
            continue
        if key not in PASSTHROUGH_DEFAULTS:
            problems.append(f"line {lineno}: unknown setting {key}, kept as is")
        settings.extra[key] = value
    return settings, problems.listed()


class _Problems(list):
    """The first MAX_PROBLEMS_LISTED problems, then only a count: a file of junk must cost one
    screen of log, not one line per line."""

    def __init__(self) -> None:
        super().__init__()
        self.more = 0

    def append(self, problem: str) -> None:
        if len(self) < MAX_PROBLEMS_LISTED:
            super().append(problem)
        else:
            self.more += 1

    def listed(self) -> list[str]:
        tail = [f"... and {self.more} more problems in this file, not listed"] if self.more else []
        return list(self) + tail


def _show(text: str, limit: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def load_settings(path: str | os.PathLike) -> tuple[Settings, list[str]]:
    """Load the settings file. A missing file gives the defaults and no problem.

    Never raises on content (garbage, truncation, undecodable bytes); an unreadable file gives the
    defaults and a problem. Each problem is logged here, once, at WARNING with the file name
    (callers must not log them again); private values (tokens, position) are never shown.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return Settings(), []
    except OSError as e:
        settings, problems = Settings(), [f"cannot read the file ({e.strerror or e}); using defaults"]
    else:
        if len(data) > MAX_FILE_BYTES:
            settings, problems = Settings(), [
                f"file is larger than {MAX_FILE_BYTES // 1024} KiB, so it is not a settings file "
                "(one is under 1 kB); not read, using defaults"]
        else:
            # utf-8-sig drops a byte-order mark an editor may have added.
            settings, problems = parse_settings(data.decode("utf-8-sig", errors="replace"))
        if not data:
            # What a crash during a non-atomic write (or an old filesystem bug) leaves behind.
            problems.append("file is empty; using defaults")
    for problem in problems:
        log.warning("settings file %s: %s", path, problem)
    return settings, problems


# --- save -------------------------------------------------------------------------------------

def format_settings(settings: Settings) -> str:
    """The file content, in the original's order, without a trailing newline.

    Raises ValueError for values that would not load back as themselves.
    """
    lines = []
    for key in _ORIGINAL_ORDER:
        if key in GOAL_KEYS and not settings.charge_goal_by_at_wall:
            continue
        if key == "greenMode" and not settings.green_mode:
            continue
        if key in _FIELDS:
            attr, parse, write = _FIELDS[key]
            value = getattr(settings, attr)
            try:
                text = write(value)
                # True would pass as 1; a bool here is a caller's bug, not a setting.
                ok = not isinstance(value, bool) and parse(text) == value
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise ValueError(f"{attr}={value!r} cannot be stored as {key}")
        else:
            text = settings.extra.get(key, PASSTHROUGH_DEFAULTS[key])
            _check_extra(key, text)
        lines.append(f"{key}={text}")
    for key, text in settings.extra.items():
        if key in KNOWN_KEYS:
            continue  # written above from the dataclass fields, which win
        _check_extra(key, text)
        lines.append(f"{key}={text}")
    content = "\n".join(lines)
    if len(content.encode("utf-8")) > MAX_FILE_BYTES:
        raise ValueError(f"the file would be over {MAX_FILE_BYTES // 1024} KiB, which the "
                         "loader refuses")
    return content


def _check_extra(key: str, text: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"extra key {key!r} is not a valid settings key")
    if not isinstance(text, str) or text != text.strip() or "\n" in text or "\r" in text:
        raise ValueError(f"extra value for {key} must be one line without surrounding spaces")


def _temp_prefix(path: Path) -> str:
    # Hidden and with a different suffix, so a temp file is never taken for the settings file.
    return f".{path.name}."


def save_settings(path: str | os.PathLike, settings: Settings) -> None:
    """Write the settings atomically (temp file, fsync, rename, fsync of the directory).

    Creates the directory if missing. On any failure the temp file is removed, the old file is
    left untouched and SettingsSaveError is raised.
    """
    path = Path(path)
    try:
        data = format_settings(settings).encode("utf-8")
    except ValueError as e:
        raise SettingsSaveError(f"settings not saved to {path}: {e}") from None
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingsSaveError(
            f"settings not saved: cannot create directory {directory}: {e.strerror or e}") from e
    _remove_stale_temps(path)
    # os.urandom, not secrets: secrets pulls in OpenSSL (+4 MB of RSS on a Pi).
    tmp = directory / f"{_temp_prefix(path)}{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        # 0o666 minus the umask, like the original's open(); keep the mode of an existing file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise SettingsSaveError(
            f"settings not saved to {path}: cannot create a file in {directory}: "
            f"{e.strerror or e}") from e
    try:
        try:
            try:
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            except FileNotFoundError:
                pass
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SettingsSaveError(
            f"settings not saved to {path}: {e.strerror or e}; the previous file is unchanged"
        ) from e
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable. The new content is already in place, so a failure here is
    # only logged: raising would wrongly tell the caller the old file is still there.
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        log.warning("settings saved, but directory %s could not be opened to sync it: %s",
                    directory, e)
        return
    try:
        os.fsync(dfd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):  # some filesystems cannot sync a directory
            log.warning("settings saved, but directory %s could not be synced: %s", directory, e)
    finally:
        os.close(dfd)


def _remove_stale_temps(path: Path) -> None:
    # A process killed between creating and renaming its temp file leaves it behind. Only old ones
    # are removed, so a save running at the same moment in another process is not disturbed.
    prefix = _temp_prefix(path)
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S:
                os.unlink(entry.path)
                log.info("removed leftover temporary settings file %s", entry.path)
        except OSError:
            pass
