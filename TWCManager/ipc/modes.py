"""LennyBo's Boost/Eco command sequence (the dashboard's two buttons), shared by the web app,
its API and MQTT. His night schedule is 21:00-07:00; with a tariff it is the tariff's off-peak
window (issue 12). The schedule command is separated by newlines, as the daemon always
expected (his page sent spaces; decisions §4.12 accepts both)."""
from __future__ import annotations

NIGHT_WINDOW = ("21:00", "07:00")


def mode_commands(window: tuple[str, str] = NIGHT_WINDOW) -> tuple[str, ...]:
    return ("setNonScheduledAmps=-1",
            f"setScheduledAmps=16\nstartTime={window[0]}\nendTime={window[1]}\ndays=127",
            "setResumeTrackGreenEnergyTime=-1:00")


def night_window_of(tariff_status: dict | None) -> tuple[str, str]:
    """The off-peak window of a tariff status (getTariffStatus), else LennyBo's."""
    if tariff_status and tariff_status.get("offpeak_start") and tariff_status.get("offpeak_end"):
        return tariff_status["offpeak_start"], tariff_status["offpeak_end"]
    return NIGHT_WINDOW


BOOST = "chargeNow"            # the last command of Boost; Eco ends with chargeNowCancel
ECO = "chargeNowCancel"
