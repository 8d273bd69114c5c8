"""LennyBo's Boost/Eco command sequence (the dashboard's two buttons), shared by the web app,
its API and MQTT. His night schedule is 21:00-07:00; with a tariff it is the tariff's off-peak
window (issue 12). The schedule command is separated by newlines, as the daemon always
expected (his page sent spaces; decisions §4.12 accepts both)."""
from __future__ import annotations

NIGHT_WINDOW = ("21:00", "07:00")


def mode_commands(window: tuple[str, str] = NIGHT_WINDOW, amps: int = 16,
                  night_charge: bool = True) -> tuple[str, ...]:
    return ("setNonScheduledAmps=-1",
            f"setScheduledAmps={amps if night_charge else -1}\nstartTime={window[0]}"
            f"\nendTime={window[1]}\ndays=127",
            "setResumeTrackGreenEnergyTime=-1:00")


def night_schedule(eco, tariff_status: dict | None) -> dict:
    """What Boost and Eco set for the night ([eco] of the configuration): on or off, the amps,
    the window and where it comes from."""
    if eco.night_start:
        window, source = (eco.night_start, eco.night_end), "configured"
    elif tariff_status:
        window, source = night_window_of(tariff_status), "the tariff's off-peak window"
    else:
        window, source = NIGHT_WINDOW, "LennyBo's default"
    return {"on": eco.night_charge, "amps": eco.night_amps, "start": window[0],
            "end": window[1], "source": source}


def night_commands(schedule: dict) -> tuple[str, ...]:
    return mode_commands((schedule["start"], schedule["end"]), schedule["amps"], schedule["on"])


def night_window_of(tariff_status: dict | None) -> tuple[str, str]:
    """The off-peak window of a tariff status (getTariffStatus), else LennyBo's."""
    if tariff_status and tariff_status.get("offpeak_start") and tariff_status.get("offpeak_end"):
        return tariff_status["offpeak_start"], tariff_status["offpeak_end"]
    return NIGHT_WINDOW


BOOST = "chargeNow"            # the last command of Boost; Eco ends with chargeNowCancel
ECO = "chargeNowCancel"
