"""A real outside client: the `mpp-solar` CLI (PyPI `mppsolar`, in a throwaway venv of its own
because it pins `paho-mqtt<2`) reads and commands our PI30 simulator on a pty; and our codec
decodes `mppsolar`'s own PI30 fixtures. Skipped, with the reason, where the package cannot be
installed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from TWCManager.pi30 import codec

ROOT = Path(__file__).resolve().parent.parent
MPPSOLAR = "mppsolar==0.16.56"
VENV = ROOT / ".cache" / "mppsolar-0.16.56"


@pytest.fixture(scope="module")
def mpp_python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "mpp-solar").exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True,
                              text=True, timeout=120)
        installed = made.returncode == 0 and subprocess.run(
            [str(python), "-m", "pip", "install", "-q", MPPSOLAR], capture_output=True,
            text=True, timeout=600)
        if not installed or installed.returncode != 0:
            why = (made.stderr if made.returncode else installed.stderr).strip().splitlines()
            pytest.skip(f"cannot install {MPPSOLAR} into {VENV}: {' '.join(why[-2:])}")
    return python


def mpp_solar(python: Path, port: str, command: str) -> dict:
    done = subprocess.run([str(python.parent / "mpp-solar"), "-p", port, "--porttype", "serial",
                           "-P", "PI30", "-c", command, "-o", "json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mpp_solar_decodes_what_the_simulator_holds(mpp_python, pi30_sim):
    sim, port = pi30_sim
    status = mpp_solar(mpp_python, port, "QPIGS")
    assert status["battery_capacity"] == 66 and status["ac_output_active_power"] == 500
    assert status["pv_input_power"] == 1500 and status["battery_voltage"] == round(
        sim.model.battery_v, 2)
    ratings = mpp_solar(mpp_python, port, "QPIRI")
    assert ratings["output_source_priority"] == "SBU first"
    assert ratings["charger_source_priority"] == "Only solar charging permitted"
    assert mpp_solar(mpp_python, port, "QMOD")["device_mode"] == "Battery"


def test_mpp_solar_setters_change_the_simulator(mpp_python, pi30_sim):
    sim, port = pi30_sim
    sim.model.output_priority, sim.model.charger_priority = 0, 0
    assert mpp_solar(mpp_python, port, "POP02")["pop"] == "ACK"
    assert mpp_solar(mpp_python, port, "PCP03")["pcp"] == "ACK"
    assert (sim.model.output_priority, sim.model.charger_priority) == (2, 3)
    assert sim.requests[-2:] == ["POP02", "PCP03"]


def test_our_codec_decodes_mppsolars_own_fixtures(mpp_python):
    dump = subprocess.run([str(mpp_python), "-c", (
        "import json\nfrom mppsolar.protocols.pi30 import QUERY_COMMANDS as Q\n"
        "print(json.dumps({c: [r.hex() for r in Q[c]['test_responses'] if isinstance(r, bytes)"
        " and r] for c in ('QPI', 'QPIGS', 'QPIRI', 'QMOD', 'QPIWS', 'QFLAG', 'QID', 'QVFW')}))")],
        capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    fixtures = json.loads(dump.stdout)
    parse = {"QPIGS": codec.parse_qpigs, "QPIRI": codec.parse_qpiri, "QMOD": codec.parse_qmod,
             "QPIWS": codec.parse_qpiws, "QFLAG": codec.parse_qflag}
    decoded = 0
    for command, frames in fixtures.items():
        for wire in frames:
            (answer,) = codec.AnswerDecoder().feed(bytes.fromhex(wire))
            if command == "QMOD":
                # Its fixture `(S 64 39` carries a wrong CRC (pi30.md §2: `(S` -> E5 D9).
                assert answer.payload is None and "CRC" in answer.error
                continue
            assert answer.payload, (command, answer)
            parse.get(command, lambda p: codec.parse_text(p, command))(answer.payload)
            decoded += 1
    assert decoded >= 12
