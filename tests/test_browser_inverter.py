"""The dashboard's battery-inverter panel in headless Chromium: `python -m TWCManager` polls the
PI30 simulator (on a pty, in this process) and `python -m www` serves the page. The panel shows
the simulator's figures, the form changes the output priority (the simulator's value changes,
and the page says it was read back), and a silent inverter turns the panel stale with dashes,
never zeros. At phone (412 px) and desktop (1280 px) widths, without sideways scrolling.
Skipped with the reason when Chromium is missing (see test_browser.py)."""
from __future__ import annotations

import re

import pytest

from TWCManager.sim import open_pty
from TWCManager.sim.pi30 import Pi30Model, Pi30Simulator

from .test_browser import Child, free_port, http_status, make_driver, pytestmark  # noqa: F401
from .util import remove_queue_for, wait_until

DESKTOP = (1280, 900)


def panel(driver) -> dict:
    return driver.execute_script("""
        var out = {};
        ['invState', 'invSoc', 'invBatteryV', 'invFlow', 'invPv', 'invLoad', 'invGridV',
         'invMode', 'invWarnings', 'invAt', 'invProblem'].forEach(function (id) {
          var e = document.getElementById(id);
          out[id] = e ? e.textContent.trim() : null;
        });
        var section = document.getElementById('inverter');
        out.shown = !!section && !section.hidden;
        out.problemShown = !document.getElementById('invProblem').hidden;
        out.output = document.querySelector('select[data-current="output-priority"]').value;
        out.flash = Array.from(document.querySelectorAll('.flash')).map(function (e) {
          return e.textContent.trim(); });
        out.overflow = document.documentElement.scrollWidth - window.innerWidth;
        return out;""")


def tempo(driver) -> dict:
    return driver.execute_script("""
        var section = document.getElementById('tariff');
        return {shown: !!section && !section.hidden,
                today: document.getElementById('tempoToday').textContent.trim(),
                tomorrow: document.getElementById('tempoTomorrow').textContent.trim(),
                planOutput: document.getElementById('planOutput').textContent.trim(),
                segments: document.querySelectorAll('#planBar .seg').length,
                lastWindow: (function () {
                  var rows = document.querySelectorAll('#planCar tr');
                  return rows.length ? rows[rows.length - 1].children[1].textContent : ''; })()};""")


def screenshot(driver, path, section: str = "inverter") -> None:
    driver.execute_script(f"document.getElementById('{section}').scrollIntoView();")
    assert driver.save_screenshot(str(path)), path


def set_width(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


@pytest.mark.timeout(180)
def test_inverter_panel_and_priority_form_in_chromium(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ipc_dir = tmp_path / "ipc"
    ipc_dir.mkdir()
    twc = open_pty(str(tmp_path / "ttyTWC"))          # no charger: the panel stands alone
    model = Pi30Model(soc_pct=66.0, pv_w=lambda t: 1500.0, load_w=lambda t: 500.0)
    model.step(1.0)
    sim = Pi30Simulator(model, link=str(tmp_path / "ttyPI30"), step_s=3600).start()
    port = free_port()
    config = tmp_path / "twcmanager.toml"
    config.write_text(
        f'[twc]\nserial_port = "{tmp_path / "ttyTWC"}"\n'
        '[green]\ncommand = "false"\n'
        f'[ipc]\npath = "{ipc_dir}"\n'
        f'[settings]\nfile = "{tmp_path / "settings.txt"}"\n'
        f'[pi30]\nport = "{tmp_path / "ttyPI30"}"\ninterval_s = 1\ntimeout_s = 1\n'
        f'[tariff]\nkind = "tempo"\n[tempo]\nsource = "manual"\n'
        f'cache_file = "{tmp_path / "tempo.json"}"\n'
        f'[web]\nhost = "127.0.0.1"\nport = {port}\n')
    base = f"http://127.0.0.1:{port}"
    daemon = web = driver = None
    try:
        daemon = Child("daemon", ["-m", "TWCManager", "--config", str(config)])
        web = Child("www", ["-m", "www", "--config", str(config)])
        logs = lambda: daemon.text() + "\n" + web.text()  # noqa: E731
        assert wait_until(lambda: http_status(f"{base}/api/getInverterStatus") == 200,
                          timeout_s=30, interval_s=0.2), logs()
        driver = make_driver(tmp_path)
        driver.get(f"{base}/")
        assert wait_until(lambda: panel(driver)["invSoc"] == "66 %", timeout_s=15,
                          interval_s=0.2), (panel(driver), logs())
        shown = panel(driver)
        assert shown["shown"] and shown["invState"] == "ok" and shown["invMode"] == "B (battery)"
        assert shown["invLoad"] == "500 W" and shown["invPv"] == "1500 W"
        assert shown["output"] == "sbu" and shown["invWarnings"] == "none"
        assert not shown["problemShown"] and shown["overflow"] <= 0, shown
        screenshot(driver, tmp_path / "inverter-phone.png")

        form = driver.find_element(By.CSS_SELECTOR, 'form.priority:has(input[value="output-priority"])')
        Select(form.find_element(By.NAME, "value")).select_by_value("utility")
        form.find_element(By.TAG_NAME, "button").click()
        assert wait_until(lambda: panel(driver)["flash"], timeout_s=40, interval_s=0.2), logs()
        assert panel(driver)["flash"] == [
            "Inverter: output-priority set to utility (was sbu; read back)"], panel(driver)
        assert model.output_priority == 0
        assert wait_until(lambda: panel(driver)["output"] == "utility", timeout_s=10,
                          interval_s=0.2), panel(driver)

        # The Tempo panel: unknown colours are said to be assumed, the plan is drawn, and
        # tomorrow's colour can be set by hand.
        assert wait_until(lambda: tempo(driver)["shown"] and tempo(driver)["segments"] >= 2,
                          timeout_s=15, interval_s=0.2), (tempo(driver), logs())
        shown = tempo(driver)
        assert shown["tomorrow"].startswith("unknown — assuming"), shown
        assert "Inverter output:" in shown["planOutput"], shown
        form = driver.find_element(By.CSS_SELECTOR, 'form[action="/tempo"]')
        Select(form.find_element(By.NAME, "colour")).select_by_value("RED")
        form.find_element(By.TAG_NAME, "button").click()       # the date is tomorrow's
        assert wait_until(lambda: tempo(driver)["tomorrow"] == "red (set by hand)",
                          timeout_s=15, interval_s=0.2), (tempo(driver), logs())
        assert any("RED (manual)" in text for text in panel(driver)["flash"])
        assert tempo(driver)["lastWindow"].startswith("red"), tempo(driver)  # re-planned

        # The chart's axes (issue 14): one point still spans an hour; 24-hour local time for a
        # day, day/month beyond two days; the y axis at least 1 kW high and showing 0.
        parts = driver.execute_script("""
            var p = window.twcChartParts, t = 1800000000;
            var fake = function (min, max) { return {scales: {x: {min: min, max: max}}}; };
            return {one: p.xRange(null, t, t), day: p.xRange(null, t - 86400, t),
                    hours: p.timeLabels(fake(t - 86400, t), [t - 3600 * 13]),
                    days: p.timeLabels(fake(t - 30 * 86400, t), [t - 86400 * 10]),
                    flat: p.yRange(null, 2.3, 2.3), signs: p.yRange(null, -3, 4)};""")
        assert parts["one"][1] - parts["one"][0] == 3600 and parts["day"][1] - parts["day"][0] == 86400
        assert re.fullmatch(r"[0-2]\d:[0-5]\d", parts["hours"][0]), parts
        assert re.fullmatch(r"[0-3]\d/[01]\d", parts["days"][0]), parts
        assert parts["flat"] == [0, 3.3] and parts["signs"] == [-3, 4]

        set_width(driver, *DESKTOP)
        assert panel(driver)["overflow"] <= 0, panel(driver)
        screenshot(driver, tmp_path / "inverter-desktop.png")
        screenshot(driver, tmp_path / "tempo-desktop.png", "tariff")

        sim.silent = True         # the inverter stops answering: stale, dashes, the reason
        assert wait_until(lambda: panel(driver)["invState"] == "stale", timeout_s=30,
                          interval_s=0.2), (panel(driver), logs())
        stale = panel(driver)
        assert stale["invSoc"] == "–" and stale["invLoad"] == "–" and stale["problemShown"]
        assert "No answer from the inverter since" in stale["invProblem"], stale
        assert "Traceback" not in logs(), logs()
    finally:
        if driver is not None:
            driver.quit()
        for child in (web, daemon):
            if child is not None:
                child.stop()
        sim.stop()
        twc.close()
        remove_queue_for(ipc_dir)
