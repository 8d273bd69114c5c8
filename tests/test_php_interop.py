"""The old PHP pages against our daemon, through a real SysV queue (decisions.md §2).

php-cli runs `tests/php/*.php`, a client written from original-program.md §8.3-§8.5 that
sends and polls the way index.php and LennyBo's TWCapi.php did (pack("LSa*"), random 16-bit
id, 50 x 100 ms non-blocking polls, foreign replies under 30 s put back). The daemon runs
in-process (`Rig`) against a simulated TWC on a pty, and every test removes its queue.

Commands are fire-and-forget, but the daemon reads the queue in order and handles requests
one by one, so a getStatus sent after a command by a later process sees its effect.
"""
from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from TWCManager.ipc import wire as ipc
from TWCManager.ipc.status import get_status_text, snapshot
from TWCManager.twc.messages import DebugRequest, Unknown
from TWCManager.settings_file import load_settings

from .test_daemon_pty import Rig, charging_unit
from .util import wait_until


def _php_problem() -> str | None:
    if shutil.which("php") is None:
        return None  # the skipif below says so
    try:
        modules = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"php -m failed: {exc}"
    if "sysvmsg" not in modules.split():
        return "php has no sysvmsg extension (Debian's php-cli has it built in)"
    return None


_PHP_PROBLEM = _php_problem()
pytestmark = [
    pytest.mark.skipif(shutil.which("php") is None,
                       reason="php-cli is not installed (./test.sh installs it when run as root; "
                              "otherwise: sudo apt-get install php-cli)"),
    pytest.mark.skipif(_PHP_PROBLEM is not None, reason=str(_PHP_PROBLEM)),
]

PHP_DIR = Path(__file__).parent / "php"
WIRING_MAX_AMPS = 32
# A 32 A unit on 32 A wiring, so chargeNow's "wiring max" is told apart from Rig's 16 A default.
LIMITS = {"twc.wiring_max_amps_all_twcs": WIRING_MAX_AMPS,
          "twc.wiring_max_amps_per_twc": WIRING_MAX_AMPS}
SLAVE_ID = "032E"


def php(script: str, *args, timeout_s: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["php", str(PHP_DIR / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout_s)


def php_ok(script: str, *args) -> str:
    done = php(script, *args)
    assert done.returncode == 0, f"{script} {args}: rc {done.returncode}, {done.stderr}"
    return done.stdout


def query(rig: Rig, text: str, packets: bool = False) -> str:
    return php_ok("query.php", rig.ipc_path, text, *(["--packets"] if packets else []))


def command(rig: Rig, text: str, *time_field) -> None:
    php_ok("command.php", rig.ipc_path, text, *time_field)


def status(rig: Rig) -> list[str]:
    return query(rig, "getStatus").split("`")


@pytest.fixture
def rig(tmp_path):
    with Rig(tmp_path, [charging_unit(int(SLAVE_ID, 16))], **LIMITS) as running:
        yield running


@pytest.fixture
def ipc_log(caplog):
    caplog.set_level(logging.INFO, logger="TWCManager")
    return caplog


def logged(caplog, *words) -> bool:
    return any(all(w in r.getMessage() for w in words) for r in caplog.records)


def wait_for_slave(rig: Rig) -> None:
    assert wait_until(lambda: rig.slaves(), timeout_s=15), "the simulated TWC never joined"


# ------------------------------------------------------------------------- key

def test_php_ftok_is_our_key(tmp_path):
    """ftok($dir, "T") in PHP and ipc.ipc_key(dir) name the same queue (no queue is made)."""
    done = subprocess.run(["php", "-r", 'echo ftok($argv[1], "T");', str(tmp_path)],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == ipc.ipc_key(str(tmp_path))


# ------------------------------------------------------------------- getStatus

AMPS_2DP = r"-?\d+\.\d\d"
INT = r"-?\d+"
HHMM = r"(?:[01]\d|2[0-3]):[0-5]\d|-1:00"
FIELD_FORMATS = [AMPS_2DP] * 4 + [INT, INT, HHMM, HHMM, INT, HHMM, "[01]", INT]
# ID~maxAmps (str(float))~actual (%.2f)~lastAmpsOffered (str of int or float)~state (decimal)
SLAVE_FORMAT = r"[0-9A-F]{4}~\d+\.\d+~\d+\.\d\d~-?\d+(?:\.\d+)?~\d+"


def test_get_status_from_php_has_the_original_format(rig):
    wait_for_slave(rig)
    fields = status(rig)
    count = int(fields[11])
    assert count == 1 and len(fields) == 12 + count, fields
    for index, (field, pattern) in enumerate(zip(fields, FIELD_FORMATS)):
        assert re.fullmatch(pattern, field), f"field {index} = {field!r}"
    assert re.fullmatch(SLAVE_FORMAT, fields[12]), fields[12]
    assert fields[12].split("~")[:2] == [SLAVE_ID, "32.0"]
    assert fields[1:4] == [f"{WIRING_MAX_AMPS:.2f}", "6.00", "0.00"]
    assert fields[4:11] == ["16", "-1", "-1:00", "-1:00", "127", "-1:00", "0"]
    # The same text the daemon formats itself (the fields that do not move with the car).
    ours = rig.daemon.query(lambda home, now: get_status_text(snapshot(home,
                                                                         rig.daemon.context(now))))
    assert ours.split("`")[1:12] == fields[1:12]


# ------------------------------------------------------------- LennyBo Boost/Eco

def test_lennybo_boost_sets_charge_now_and_the_space_separated_schedule(rig):
    echo = php_ok("boost.php", rig.ipc_path)
    assert echo == ("<b>setNonScheduledAmps=-1</b><br>"
                    "<b>setScheduledAmps=16 startTime=21:00 endTime=07:00 days=127</b><br>"
                    "<b>setResumeTrackGreenEnergyTime=-1:00</b><br><b>chargeNow</b><br>")
    fields = status(rig)
    assert fields[3] == f"{WIRING_MAX_AMPS:.2f}"
    # decisions §4.12: the schedule LennyBo sent with spaces is applied now
    assert fields[4:10] == ["-1", "16", "21:00", "07:00", "127", "-1:00"]

    php_ok("eco.php", rig.ipc_path)
    fields = status(rig)
    assert fields[3] == "0.00"
    assert fields[4:10] == ["-1", "16", "21:00", "07:00", "127", "-1:00"]
    saved, _problems = load_settings(rig.settings_file)
    assert (saved.scheduled_amps, saved.scheduled_start_min, saved.scheduled_end_min,
            saved.charge_now_amps) == (16, 21 * 60, 7 * 60, 0)


# ------------------------------------------------------------ index.php form submit

FORM = ["nonScheduledAmpsMax=8", "scheduledAmpsMax=10", "scheduledAmpStartTime=06:00",
        "scheduledAmpsEndTime=07:30", "scheduledAmpsDay[0]=on", "scheduledAmpsDay[6]=on",
        "resumeTrackGreenEnergyTime=06:30"]


def test_index_php_save_then_one_day_charge(rig):
    sent = php_ok("index_submit.php", rig.ipc_path, *FORM, "submit=Save")
    assert sent.splitlines() == [
        "setNonScheduledAmps=8",
        r"setScheduledAmps=10\nstartTime=06:00\nendTime=07:30\ndays=65",  # Sunday + Saturday
        "setResumeTrackGreenEnergyTime=06:30"]
    fields = status(rig)
    assert fields[3:10] == ["0.00", "8", "10", "06:00", "07:30", "65", "06:30"]

    sent = php_ok("index_submit.php", rig.ipc_path, *FORM,
                  f"submit=1-day charge, {WIRING_MAX_AMPS}A")
    assert sent.splitlines()[-1] == "chargeNow"
    fields = status(rig)
    assert fields[3:10] == [f"{WIRING_MAX_AMPS:.2f}", "8", "10", "06:00", "07:30", "65", "06:30"]

    sent = php_ok("index_submit.php", rig.ipc_path, *FORM, "submit=Cancel 1-day charge")
    assert sent.splitlines()[-1] == "chargeNowCancel"
    assert status(rig)[3] == "0.00"


# --------------------------------------------------------------- stale commands

def test_command_older_than_60_s_is_dropped_a_fresh_one_applies(rig, ipc_log):
    command(rig, "setNonScheduledAmps=5", int(time.time()) - 61)
    assert status(rig)[4] == "16"
    assert logged(ipc_log, "dropped", "setNonScheduledAmps=5")

    command(rig, "setNonScheduledAmps=7", int(time.time()) - 45)  # late, but not stale
    assert status(rig)[4] == "7"
    command(rig, "setNonScheduledAmps=5")
    assert status(rig)[4] == "5"


# ------------------------------------------------------------------ bad input

def test_bad_requests_from_php_have_no_effect(rig, ipc_log):
    wait_for_slave(rig)
    before = status(rig)

    php_ok("command.php", rig.ipc_path, "--short-body")   # pack("L", time()): 4 bytes
    assert status(rig)[3:11] == before[3:11]
    assert logged(ipc_log, "4 bytes")

    command(rig, "setNonScheduledAmps=1-2")
    assert status(rig)[3:11] == before[3:11]
    assert logged(ipc_log, "setNonScheduledAmps", "1-2")

    command(rig, "sendTWCMsg=ABC")                     # odd number of hex digits
    assert query(rig, "getLastTWCMsgResponse") == "None"
    assert status(rig)[3:11] == before[3:11]
    assert logged(ipc_log, "sendTWCMsg", "odd")
    assert not [m for _, m in rig.master_frames() if isinstance(m, (Unknown, DebugRequest))]

    # still answering, still running the bus
    assert query(rig, "ping=after-bad-input") == "pong=after-bad-input"
    assert rig.thread.is_alive()
    assert rig.slaves()


def test_oversized_request_from_php_does_not_wedge_the_queue(rig):
    """A long sendTWCMsg from index.php's hex form (any text up to the kernel's msgmax,
    8192 bytes, can be sent) must get a logged error, not stop the IPC (decisions §4.3)."""
    command(rig, "sendTWCMsg=" + "00" * 1500)
    assert php("query.php", rig.ipc_path, "ping=after-long").stdout == "pong=after-long"


# --------------------------------------------------------------------- dumpState

def test_dump_state_in_packet_mode_from_php(rig):
    wait_for_slave(rig)
    dump = query(rig, "dumpState", packets=True)
    assert f"slave {SLAVE_ID}" in dump
    assert "masterID=7777" in dump
    # Several packets, joined in order; few enough for the old pages' 50-round budget,
    # in which each packet of ours uses up a round.
    assert ipc.MAX_REPLY_CHARS < len(dump) <= 40 * ipc.MAX_REPLY_CHARS
    assert dump.startswith("time=")


# ------------------------------------------------------------------------ stress

PHP_CLIENTS = 5
PY_THREADS = 10
QUERIES_EACH = 200
# The Python threads pause up to this between queries, so their 200 queries spread over
# most of the PHP run (≥ 20 s) instead of being over in half a second.
PY_PAUSE_MAX_S = 0.1


def run_python_clients(rig: Rig, id_range, count: int, failures: list, answered: list,
                       start: threading.Barrier, stop: threading.Event | None = None):
    from TWCManager.ipc_client import IpcClient

    def client_thread(n: int) -> None:
        client = IpcClient(path=rig.ipc_path, id_range=id_range)
        pace = random.Random(n)
        try:
            start.wait()
            for i in range(count):
                if stop is not None and stop.is_set():
                    return
                token = f"py{n}-{i}"
                reply = client.query(f"ping={token}", timeout_s=10)
                if reply != f"pong={token}":
                    failures.append(f"thread {n}: {token} got {reply!r}")
                    return
                answered[n] += 1
                time.sleep(pace.uniform(0, PY_PAUSE_MAX_S))
        except Exception as exc:  # a lost reply is an IpcTimeout
            failures.append(f"thread {n}: {exc!r}")

    threads = [threading.Thread(target=client_thread, args=(n,), daemon=True)
               for n in range(len(answered))]
    for thread in threads:
        thread.start()
    return threads


def start_php_stress(rig: Rig, count: int, id_range, *options) -> subprocess.Popen:
    return subprocess.Popen(["php", str(PHP_DIR / "stress.php"), str(rig.ipc_path), str(count),
                             str(id_range[0]), str(id_range[1]), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_php(procs, deadline: float) -> list[tuple[int, str, str]]:
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((proc.returncode, out.strip(), err.strip()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return results


def assert_queue_empty(rig: Rig) -> None:
    """Nothing left behind: no reply was delivered twice or to nobody."""
    import sysv_ipc

    queue = sysv_ipc.MessageQueue(ipc.ipc_key(str(rig.ipc_path)))
    assert wait_until(lambda: queue.current_messages == 0, timeout_s=2), queue.current_messages


def test_stress_php_and_python_clients_at_once(rig):
    """5 PHP processes and 10 Python threads, 200 queries each, all at the same time:
    every query gets its own pong, none is lost.

    The protocol's ids are 16-bit random numbers chosen by each client on its own, so two
    independent clients can pick the same id and take each other's reply -- by design of
    the original, a birthday-paradox matter that no server can fix. The test gives each
    PHP process, and the Python side, a disjoint id range, so that it tests our server and
    the clients' put-back of each other's replies rather than the odds of a collision.
    (The Python threads share one range: the in-process router never gives one id to two
    waiting threads.)

    The PHP clients run with --scan: the old pages take one message per 100 ms round, and
    several of them polling in step starve each other (see ipcQuery in tests/php/twc_ipc.php);
    test_old_page_polling_alongside_python_clients covers the pages' exact algorithm.
    """
    wait_for_slave(rig)
    php_ranges = [(1 + k * 1000, (k + 1) * 1000) for k in range(PHP_CLIENTS)]
    py_range = (PHP_CLIENTS * 1000 + 1, 65535)

    failures: list[str] = []
    answered = [0] * PY_THREADS
    start = threading.Barrier(PY_THREADS + 1, timeout=30)
    threads = run_python_clients(rig, py_range, QUERIES_EACH, failures, answered, start)
    began = time.monotonic()
    procs = [start_php_stress(rig, QUERIES_EACH, id_range, "--scan") for id_range in php_ranges]
    start.wait()
    php_results = finish_php(procs, began + 90)
    for thread in threads:
        thread.join(max(0.1, began + 95 - time.monotonic()))
    elapsed_s = time.monotonic() - began

    assert not any(t.is_alive() for t in threads), "a Python client is still waiting"
    assert not failures, failures[:5]
    assert answered == [QUERIES_EACH] * PY_THREADS
    for returncode, out, err in php_results:
        assert returncode == 0 and f"ok={QUERIES_EACH} lost=0 wrong=0" in out, (out, err)
    assert_queue_empty(rig)
    print(f"stress: {PHP_CLIENTS * QUERIES_EACH} PHP + {PY_THREADS * QUERIES_EACH} Python "
          f"queries in {elapsed_s:.1f} s; " + "; ".join(out for _, out, _ in php_results))


def test_old_page_polling_alongside_python_clients(rig):
    """One PHP client with the old pages' exact polling (one message per round) gets every
    answer while 10 Python threads keep the queue busy and put its replies back."""
    failures: list[str] = []
    answered = [0] * PY_THREADS
    start = threading.Barrier(PY_THREADS + 1, timeout=30)
    stop = threading.Event()
    threads = run_python_clients(rig, (1001, 65535), 10_000, failures, answered, start, stop)
    began = time.monotonic()
    proc = start_php_stress(rig, 40, (1, 1000))
    start.wait()
    try:
        [(returncode, out, err)] = finish_php([proc], began + 40)
    finally:
        stop.set()
        for thread in threads:
            thread.join(max(0.1, began + 50 - time.monotonic()))
    assert returncode == 0 and "ok=40 lost=0 wrong=0" in out, (out, err)
    assert not failures, failures[:5]
    assert min(answered) > 0, answered  # the Python side really was busy meanwhile
    assert not any(t.is_alive() for t in threads)
    assert_queue_empty(rig)
