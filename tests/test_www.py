"""Every route of the web app with the Flask test client, through the real
`IpcClient` and a real private SysV queue served by a fake daemon (tests/fake_peer.py),
so the commands asserted here are the bytes the daemon would read."""
from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pytest
from werkzeug.security import generate_password_hash

from TWCManager.config import load_config
from TWCManager.ipc_client import IpcClient
from www import create_app, pages

from .fake_peer import STATUS_EU, STATUS_NO_TWC, STATUS_US

IPC_TIMEOUT_S = 0.3
BOOST_SETS = [
    "setNonScheduledAmps=-1",
    "setScheduledAmps=16\nstartTime=21:00\nendTime=07:00\ndays=127",
    "setResumeTrackGreenEnergyTime=-1:00",
]


# ------------------------------------------------------------------ fixtures

def make_app(daemon, **overrides):
    cfg = load_config(None, {"ipc.path": str(daemon.path), "web.ipc_timeout_s": IPC_TIMEOUT_S,
                             **overrides})
    app = create_app(cfg, peer=IpcClient(daemon.path))
    # The send-message page's waits (3 s, +5 s for FCA1) are recorded, not slept.
    app.config[pages.SLEEP_KEY] = app.extensions.setdefault("slept", []).append
    return app


@pytest.fixture
def app(daemon):
    return make_app(daemon)


@pytest.fixture
def client(app):
    return app.test_client()


def sent(daemon) -> list[str]:
    daemon.flush()
    return daemon.commands


def text_of(response) -> str:
    return response.get_data(as_text=True)


def csrf_token(client) -> str:
    page = text_of(client.get("/index.php"))
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def assert_no_trace(response, *secrets: str) -> None:
    body = text_of(response)
    assert "Traceback" not in body and 'File "' not in body
    for secret in secrets:
        assert secret not in body


class Form(HTMLParser):
    """The controls of a page: selects with their options, checkboxes, buttons, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.selects: dict[str, list[tuple[str, str, bool]]] = {}
        self.checkboxes: dict[str, bool] = {}
        self.buttons: list[str] = []
        self.text_parts: list[str] = []
        self._select = None
        self._option = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select":
            self._select = a["name"]
            self.selects[self._select] = []
        elif tag == "option":
            self._option = [a["value"], "", "selected" in a]
        elif tag == "input" and a.get("type") == "checkbox":
            self.checkboxes[a["name"]] = "checked" in a
        elif tag == "input" and a.get("type") == "submit":
            self.buttons.append(a["value"])
        elif tag in ("br", "p", "li"):
            self.text_parts.append(" ")

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None:
            self.selects[self._select].append(tuple(self._option))
            self._option = None

    def handle_data(self, data):
        if self._option is not None:
            self._option[1] += data
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_parts))

    def values(self, name: str) -> list[str]:
        return [value for value, _label, _sel in self.selects[name]]

    def labels(self, name: str) -> list[str]:
        return [label for _value, label, _sel in self.selects[name]]

    def selected(self, name: str) -> list[str]:
        return [value for value, _label, sel in self.selects[name] if sel]


def page_form(client, url="/index.php") -> Form:
    response = client.get(url)
    assert response.status_code == 200, text_of(response)
    return Form(text_of(response))


# ---------------------------------------------------------------- dashboard

def test_dashboard_uses_only_local_assets_and_jquery_from_static(client):
    response = client.get("/")
    assert response.status_code == 200
    html = text_of(response)
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs, html
    assert not [ref for ref in refs if re.match(r"(?i)(https?:)?//", ref)]
    jquery = [ref for ref in refs if "jquery" in ref]
    assert jquery and all(ref.startswith("/static/") for ref in jquery)
    for ref in refs:
        if ref.startswith("/static/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
    assert b"jQuery" in client.get(jquery[0]).data
    for element in ('id="mode"', 'id="why"', 'id="available"', 'id="pulling"', 'id="flow"',
                    'id="chargers"', 'action="/mode"', 'value="boost"', 'value="eco-solar"',
                    'value="eco-cheapest"', 'value="scheduled"', 'value="fixed"', 'value="off"'):
        assert element in html, element
    # The page says what Boost and Eco set for the night (LennyBo's 21:00-07:00 here).
    assert "Boost and Eco also set a night charge: 16 A from 21:00 to 07:00" in html


def test_control_page_script_is_served_locally(client):
    html = text_of(client.get("/index.php"))
    assert '<script src="/static/index.js">' in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    script = client.get("/static/index.js")
    assert script.status_code == 200
    assert b"scheduledPower" in script.data and b"resumeGreen" in script.data


# ------------------------------------------------------------- /TWCapi.php

def ordered_json(response):
    assert response.mimetype == "application/json"
    return json.loads(response.get_data(as_text=True), object_pairs_hook=list)


def test_twcapi_getstatus_is_lennybos_json(client, daemon):
    daemon.status = "20.00`40.00`12.00`0.00`20`-1`-1:00`-1:00`127`-1:00`1`1`032E~32.0~7.20~8.0~1"
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 200
    # Byte-for-byte the example of original-program.md §9.2 (keys, order, strings).
    assert json.loads(text_of(response)) == json.loads(
        '{"maxAmpsToDivideAmongSlaves":"20.00","wiringMaxAmpsAllTWCs":"40.00",'
        '"minAmpsPerTWC":"12.00","chargeNowAmps":"0.00","nonScheduledAmpsMax":"20",'
        '"scheduledAmpsMax":"-1","scheduledAmpStartTime":"-1:00","scheduledAmpsEndTime":"-1:00",'
        '"resumeTrackGreenEnergyTime":"-1:00","TWC":[{"twcModelMaxAmps":"32.0",'
        '"twcChargeSpeed":"7.20","twcChargeAvailable":"8.0"}]}')
    pairs = ordered_json(response)
    assert [key for key, _ in pairs] == [
        "maxAmpsToDivideAmongSlaves", "wiringMaxAmpsAllTWCs", "minAmpsPerTWC", "chargeNowAmps",
        "nonScheduledAmpsMax", "scheduledAmpsMax", "scheduledAmpStartTime",
        "scheduledAmpsEndTime", "resumeTrackGreenEnergyTime", "TWC"]
    assert all(isinstance(value, str) for key, value in pairs if key != "TWC")
    twc = dict(pairs)["TWC"][0]
    assert [key for key, _ in twc] == ["twcModelMaxAmps", "twcChargeSpeed", "twcChargeAvailable"]
    assert daemon.queries == ["getStatus"]


def test_twcapi_getstatus_two_twcs_idle_one_reads_zero(client, daemon):
    daemon.status = STATUS_US
    data = client.get("/TWCapi.php?GetStatus=1").get_json()
    assert data["TWC"] == [
        {"twcModelMaxAmps": "80.0", "twcChargeSpeed": "19.20", "twcChargeAvailable": "20"},
        {"twcModelMaxAmps": "80.0", "twcChargeSpeed": "0", "twcChargeAvailable": "12"}]


def test_twcapi_getstatus_with_no_twc_is_valid_json_with_empty_list(client, daemon):
    daemon.status = STATUS_NO_TWC
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 200
    data = json.loads(text_of(response))   # the PHP printed HTML before the JSON here
    assert data["TWC"] == []
    assert data["maxAmpsToDivideAmongSlaves"] == "8.00"


def test_twcapi_getstatus_silent_daemon_is_503_json(client, daemon):
    daemon.silent = True
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "TWCManager is not responding"
    assert "<" not in text_of(response)


def test_twcapi_getstatus_without_queue_is_503_json(client, daemon):
    daemon.stop()   # the queue is gone: the daemon is not running
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 503
    assert response.get_json()["error"] == "TWCManager is not responding"


@pytest.mark.parametrize("garbage", ["x`y", "", "a`b`c`d`e`f`g`h`i`j`k`2`032E~1~2~3~4"])
def test_twcapi_getstatus_garbage_is_503_json(client, daemon, garbage):
    daemon.status = garbage
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert_no_trace(response)


@pytest.mark.parametrize("arg, last", [("Boost", "chargeNow"), ("CancelBoost", "chargeNowCancel")])
def test_twcapi_boost_and_cancel_send_lennybos_sequence_and_redirect(client, daemon, arg, last):
    response = client.get(f"/TWCapi.php?{arg}=1")
    assert response.status_code in (302, 303)
    assert response.headers["Location"] in ("/", "http://localhost/")
    assert sent(daemon) == BOOST_SETS + [last]


def test_with_a_tariff_boost_and_eco_schedule_the_offpeak_window(client, daemon):
    daemon.json_packets["getTariffStatus"] = {"kind": "tempo", "offpeak_start": "22:30",
                                              "offpeak_end": "06:30"}
    assert client.get("/TWCapi.php?CancelBoost=1").status_code in (302, 303)
    assert sent(daemon)[1] == "setScheduledAmps=16\nstartTime=22:30\nendTime=06:30\ndays=127"
    assert "getTariffStatus" in daemon.queries


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://evil.example"},
                                     {"Referer": "http://evil.example/page"}])
@pytest.mark.parametrize("arg", ["Boost", "CancelBoost"])
def test_twcapi_cross_site_boost_is_refused_and_sends_nothing(client, daemon, arg, headers):
    response = client.get(f"/TWCapi.php?{arg}=1", headers=headers)
    assert response.status_code == 403
    assert sent(daemon) == []


def test_twcapi_same_origin_boost_is_allowed(client, daemon):
    response = client.get("/TWCapi.php?Boost=1", headers={"Sec-Fetch-Site": "same-origin",
                                                          "Origin": "http://localhost"})
    assert response.status_code in (302, 303)
    assert sent(daemon) == BOOST_SETS + ["chargeNow"]


@pytest.mark.parametrize("query", ["", "?GetStatus=0", "?Boost=yes", "?Foo=1", "?getstatus=1"])
def test_twcapi_anything_else_is_400_json(client, daemon, query):
    response = client.get("/TWCapi.php" + query)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert sent(daemon) == [] and daemon.queries == []


# ------------------------------------------------------- /index.php display

def test_index_status_lines_two_us_units(client, daemon):
    daemon.status = STATUS_US
    form = page_form(client)
    assert "Power available for all TWCs: 20.00 A" in form.text
    assert "TWC 032E: Charging at 19.20A." in form.text
    assert "(20A available)" not in form.text   # offered - actual = 0.8, not > 1
    assert "TWC 0451: Finished charging, unplugged, or waking up. (12A available)" in form.text
    assert "No slave TWCs found" not in form.text


@pytest.mark.parametrize("status, line", [
    # pool 0 -> "None"; idle unit offered under 5 A -> "No power available."
    ("0.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`1`032E~32.0~0.00~0~0",
     "TWC 032E: No power available."),
    # 0 < pool < min -> the minAmpsPerTWC message with the status's own formatting
    ("4.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`1`032E~32.0~0.00~0.0~0",
     "TWC 032E: Power available less than 6.00A (minAmpsPerTWC)."),
    # charging with more than 1 A headroom
    ("16.00`32.00`6.00`0.00`16`-1`-1:00`-1:00`127`-1:00`0`1`032E~32.0~10.00~16~1",
     "TWC 032E: Charging at 10.00A. (16A available)"),
])
def test_index_status_line_variants(client, daemon, status, line):
    daemon.status = status
    assert line in page_form(client).text


def test_index_pool_zero_reads_none(client, daemon):
    daemon.status = "0.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`1`032E~32.0~0.00~0~0"
    assert "Power available for all TWCs: None" in page_form(client).text


def test_index_no_twc(client, daemon):
    daemon.status = STATUS_NO_TWC
    form = page_form(client)
    assert "No slave TWCs found on RS485 network." in form.text
    assert "TWC " not in form.text.replace("TWCs", "")
    # No unit tells the model: the original's 80 A default (am/pm, US choices).
    assert form.labels("scheduledAmpStartTime")[0] == "12:00am"


def test_index_eu_form_choices_and_preselection(client, daemon):
    daemon.status = STATUS_EU   # wiring 32, min 6, last unit 32 A
    form = page_form(client)
    amps = ["6", "8", "10", "13", "17", "21", "25", "32"]
    assert form.values("scheduledAmpsMax") == ["-1"] + amps
    assert form.labels("scheduledAmpsMax")[:2] == ["Disabled", "6A"]
    assert form.values("nonScheduledAmpsMax") == ["-1", "0"] + amps
    assert form.labels("nonScheduledAmpsMax")[:2] == ["Track green energy", "Do not charge"]
    hours = [f"{h:02d}:00" for h in range(24)]
    assert form.values("scheduledAmpStartTime") == hours
    assert form.labels("scheduledAmpStartTime") == hours   # 24 h labels for EU units
    assert form.values("scheduledAmpsEndTime") == hours
    assert form.values("resumeTrackGreenEnergyTime") == ["-1:00"] + hours
    assert form.labels("resumeTrackGreenEnergyTime")[0] == "Never"
    # Pre-selected by exact string from getStatus (13, 21:00, 07:00, -1, -1:00).
    assert form.selected("scheduledAmpsMax") == ["13"]
    assert form.selected("scheduledAmpStartTime") == ["21:00"]
    assert form.selected("scheduledAmpsEndTime") == ["07:00"]
    assert form.selected("nonScheduledAmpsMax") == ["-1"]
    assert form.selected("resumeTrackGreenEnergyTime") == ["-1:00"]
    # Days bitmap 65 = Sunday (bit 0) and Saturday (bit 6).
    assert form.checkboxes == {f"scheduledAmpsDay[{i}]": i in (0, 6) for i in range(7)}
    assert form.buttons == ["1-day charge, 32A", "Save"]


def test_index_us_form_choices_filtered_by_wiring_and_min(client, daemon):
    daemon.status = STATUS_US   # wiring 40, min 12, last unit 80 A
    form = page_form(client)
    assert form.values("scheduledAmpsMax") == ["-1", "12", "16", "20", "24", "28", "32", "36", "40"]
    assert form.values("scheduledAmpStartTime")[:2] == ["00:00", "01:00"]
    labels = form.labels("scheduledAmpStartTime")
    assert labels[0] == "12:00am" and labels[1] == "1:00am" and labels[12] == "12:00pm"
    assert labels[13] == "1:00pm" and labels[23] == "11:00pm"
    assert form.selected("nonScheduledAmpsMax") == ["20"]
    assert form.buttons == ["1-day charge, 40A", "Save"]


def test_index_model_is_the_last_units(client, daemon):
    # An 80 A unit first and a 32 A unit last: the original took the last one (EU).
    daemon.status = ("20.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`2"
                     "`032E~80.0~0.00~0~0`0451~32.0~0.00~0~0")
    assert page_form(client).labels("scheduledAmpStartTime")[13] == "13:00"


def test_index_charge_now_active_offers_cancel(client, daemon):
    daemon.status = "40.00`40.00`12.00`40.00`8`16`21:00`07:00`127`06:30`0`1`032E~80.0~0.00~0.0~3"
    form = page_form(client)
    assert form.buttons == ["Cancel 1-day charge", "Save"]


def test_index_keeps_a_current_value_that_is_not_a_standard_choice(client, daemon):
    # 20 A is not an EU choice and 06:30 is not a whole hour: the original pre-selected
    # the first option and the next Save sent it; here the current value is offered.
    daemon.status = "20.00`32.00`6.00`0.00`20`-1`-1:00`-1:00`127`06:30`0`1`032E~32.0~0.00~0~0"
    form = page_form(client)
    assert form.selected("nonScheduledAmpsMax") == ["20"]
    assert form.values("nonScheduledAmpsMax") == ["-1", "0", "6", "8", "10", "13", "17", "20",
                                                  "21", "25", "32"]
    assert form.selected("resumeTrackGreenEnergyTime") == ["06:30"]


def test_index_old_state_changing_link_only_shows_the_form(client, daemon):
    response = client.get("/index.php?submit=Save&nonScheduledAmpsMax=8")
    assert response.status_code == 200
    assert "no longer changes anything from a link" in Form(text_of(response)).text
    assert sent(daemon) == []


def test_index_escapes_what_the_daemon_says(client, daemon):
    daemon.status = "20.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`1`<b>X~32.0~7.20~<i>~1"
    html = text_of(client.get("/index.php"))
    assert "<b>X" not in html and "&lt;b&gt;X" in html
    assert "<i>" not in html


# ---------------------------------------------------------- /index.php POST

def control_form(token, **changes):
    data = {"csrf_token": token, "scheduledAmpsMax": "13", "scheduledAmpStartTime": "21:00",
            "scheduledAmpsEndTime": "07:00", "scheduledAmpsDay[0]": "1",
            "scheduledAmpsDay[6]": "1", "nonScheduledAmpsMax": "-1",
            "resumeTrackGreenEnergyTime": "-1:00", "submit": "Save"}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


@pytest.mark.parametrize("button, last", [("Save", []), ("1-day charge, 32A", ["chargeNow"]),
                                          ("Cancel 1-day charge", ["chargeNowCancel"])])
def test_index_post_sends_the_originals_commands_in_order(client, daemon, button, last):
    token = csrf_token(client)
    daemon.clear()
    data = control_form(token, submit=button, nonScheduledAmpsMax="8",
                        resumeTrackGreenEnergyTime="06:00")
    data["scheduledAmpsDay[3]"] = "1"
    response = client.post("/index.php", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/index.php"
    assert sent(daemon) == [
        "setNonScheduledAmps=8",
        "setScheduledAmps=13\nstartTime=21:00\nendTime=07:00\ndays=73",  # Su, We, Sa
        "setResumeTrackGreenEnergyTime=06:00",
    ] + last
    assert daemon.queries == ["getStatus"]   # the choices are checked against fresh status
    assert "Sent to TWCManager." in text_of(client.get("/index.php"))


def test_index_post_disabled_schedule_and_no_days(client, daemon):
    token = csrf_token(client)
    data = control_form(token, scheduledAmpsMax="-1", nonScheduledAmpsMax="0")
    del data["scheduledAmpsDay[0]"], data["scheduledAmpsDay[6]"]
    assert client.post("/index.php", data=data).status_code == 303
    assert sent(daemon) == ["setNonScheduledAmps=0",
                            "setScheduledAmps=-1\nstartTime=21:00\nendTime=07:00\ndays=0",
                            "setResumeTrackGreenEnergyTime=-1:00"]


def test_index_post_all_days_is_127(client, daemon):
    token = csrf_token(client)
    data = control_form(token)
    data.update({f"scheduledAmpsDay[{i}]": "1" for i in range(7)})
    assert client.post("/index.php", data=data).status_code == 303
    assert sent(daemon)[1].endswith("\ndays=127")


def test_index_post_only_a_button_sends_only_that(client, daemon):
    # Like the original, an absent field sends nothing of its own.
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token, "submit": "1-day charge, 32A"})
    assert response.status_code == 303
    assert sent(daemon) == ["chargeNow"]


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_index_post_without_valid_csrf_token_is_403_and_sends_nothing(client, daemon, token):
    good = csrf_token(client)
    data = control_form(good, submit="1-day charge, 32A")
    if token is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = token
    response = client.post("/index.php", data=data)
    assert response.status_code == 403
    assert_no_trace(response)
    assert sent(daemon) == []


def test_index_post_from_a_fresh_session_is_403(app, daemon):
    token = csrf_token(app.test_client())   # another browser's token
    response = app.test_client().post("/index.php", data=control_form(token))
    assert response.status_code == 403
    assert sent(daemon) == []


def test_index_post_cross_site_is_403_even_with_token(client, daemon):
    token = csrf_token(client)
    response = client.post("/index.php", data=control_form(token),
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert sent(daemon) == []


@pytest.mark.parametrize("field, value, message", [
    ("nonScheduledAmpsMax", "99", "Non-scheduled power: '99' is not one of the choices"),
    ("nonScheduledAmpsMax", "7", "'7' is not one of the choices"),
    ("nonScheduledAmpsMax", "-2", "'-2' is not one of the choices"),
    ("nonScheduledAmpsMax", "1-2", "'1-2' is not one of the choices"),
    ("nonScheduledAmpsMax", "8.0", "'8.0' is not one of the choices"),
    ("scheduledAmpsMax", "0", "Scheduled power: '0' is not one of the choices"),
    ("scheduledAmpsMax", "40", "'40' is not one of the choices"),      # above wiring 32
    ("scheduledAmpsMax", "abc", "'abc' is not one of the choices"),
    ("scheduledAmpStartTime", "24:00", "from: '24:00' is not one of the choices"),
    ("scheduledAmpStartTime", "06:30", "'06:30' is not one of the choices"),
    ("scheduledAmpStartTime", "-1:00", "'-1:00' is not one of the choices"),
    ("scheduledAmpsEndTime", "7:00", "to: '7:00' is not one of the choices"),
    ("scheduledAmpStartTime", None, "from: a time is needed with Scheduled power"),
    ("resumeTrackGreenEnergyTime", "-2:00", "'-2:00' is not one of the choices"),
    ("resumeTrackGreenEnergyTime", "25:00", "'25:00' is not one of the choices"),
    ("scheduledAmpsDay[7]", "1", "Day checkbox 'scheduledAmpsDay[7]' does not exist"),
    ("scheduledAmpsDay[-1]", "1", "does not exist"),
    ("scheduledAmpsDay[01]", "1", "does not exist"),
    ("scheduledAmpsDay[2]", "2", "Day checkbox Tu: value '2' is not 1"),
    ("submit", "Go", "Unknown button 'Go'"),
    ("submit", None, "No button was pressed"),
])
def test_index_post_bad_field_shows_message_and_sends_nothing(client, daemon, field, value, message):
    token = csrf_token(client)
    data = control_form(token, nonScheduledAmpsMax="8")   # every other field valid
    if value is None:
        del data[field]
    else:
        data[field] = value
    response = client.post("/index.php", data=data)
    assert response.status_code == 400
    html = text_of(response)
    assert "Nothing was sent" in html
    assert message in Form(html).text
    assert "<form" in html   # the page again, with the form
    assert sent(daemon) == []


def test_index_post_refused_keeps_the_valid_entries(client, daemon):
    token = csrf_token(client)
    data = control_form(token, nonScheduledAmpsMax="25", scheduledAmpStartTime="99:00")
    response = client.post("/index.php", data=data)
    assert response.status_code == 400
    form = Form(text_of(response))
    assert form.selected("nonScheduledAmpsMax") == ["25"]
    assert form.selected("scheduledAmpStartTime") == ["21:00"]   # the current one
    assert sent(daemon) == []


def test_index_post_several_bad_fields_are_all_reported(client, daemon):
    token = csrf_token(client)
    data = control_form(token, nonScheduledAmpsMax="99", scheduledAmpsEndTime="x")
    text = Form(text_of(client.post("/index.php", data=data))).text
    assert "'99' is not one of the choices" in text and "'x' is not one of the choices" in text


def test_index_post_current_non_standard_value_is_accepted(client, daemon):
    daemon.status = "20.00`32.00`6.00`0.00`20`-1`-1:00`-1:00`127`06:30`0`1`032E~32.0~0.00~0~0"
    token = csrf_token(client)
    data = control_form(token, nonScheduledAmpsMax="20", resumeTrackGreenEnergyTime="06:30")
    assert client.post("/index.php", data=data).status_code == 303
    assert sent(daemon)[0] == "setNonScheduledAmps=20"
    assert daemon.commands[2] == "setResumeTrackGreenEnergyTime=06:30"


def test_index_post_silent_daemon_is_503_and_sends_nothing(client, daemon):
    token = csrf_token(client)
    daemon.silent = True
    response = client.post("/index.php", data=control_form(token))
    assert response.status_code == 503
    assert "TWCManager is not responding" in text_of(response)
    assert_no_trace(response)
    assert sent(daemon) == []


# ----------------------------------------------------- /index.php not responding

@pytest.mark.parametrize("url", ["/index.php", "/index.php?debugTWC=1&dumpState=1",
                                 "/index.php?debugTWC=1&getLastTWCMsgResponse=1"])
def test_pages_say_not_responding_with_503(client, daemon, url):
    daemon.silent = True
    response = client.get(url)
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "TWCManager is not responding" in text_of(response)
    assert_no_trace(response)


def test_index_without_queue_says_not_running(client, daemon):
    daemon.stop()
    response = client.get("/index.php")
    assert response.status_code == 503
    assert "TWCManager is not responding" in text_of(response)
    assert "not running" in text_of(response)


@pytest.mark.parametrize("garbage", ["x`y", "x`y`z`a`b`c`d`e`f`g`h`0",
                                     "20.00`abc`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`0",
                                     "20.00`32.00`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`1`X~Y",
                                     "20.00`nan`6.00`0.00`-1`-1`-1:00`-1:00`127`-1:00`0`0"])
def test_pages_with_garbage_status_answer_an_error_without_trace(client, daemon, garbage):
    daemon.status = garbage
    for url in ("/index.php", "/index.php?submit=Save&nonScheduledAmpsMax=8"):
        response = client.get(url)
        assert response.status_code == 503
        assert "unexpected reply from TWCManager" in text_of(response)
        assert_no_trace(response)
    # TWCapi.php passes the status's strings through, as the PHP did; it stays JSON.
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code in (200, 503) and response.mimetype == "application/json"
    assert_no_trace(response)


# ------------------------------------------------------------- debug pages

def test_debug_menu(client, daemon):
    response = client.get("/index.php?debugTWC=1")
    assert response.status_code == 200
    html = text_of(response)
    assert "<title>TWCDebug</title>" in html
    for link in ("sendTWCMsg=", "setMasterHeartbeatData=", "dumpState=1"):
        assert link in html
    assert 'name="setDebugLevel"' in html and 'method="post"' in html
    assert sent(daemon) == [] and daemon.queries == []


@pytest.mark.parametrize("value, command", [("0", "setDebugLevel=0"), ("11", "setDebugLevel=11"),
                                            (" 2 ", "setDebugLevel=2")])
def test_debug_level_is_sent(client, daemon, value, command):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token, "setDebugLevel": value})
    assert response.status_code == 200
    assert "Debug level set to" in text_of(response)
    assert sent(daemon) == [command]


@pytest.mark.parametrize("value", ["12", "-1", "x", "", "1.5", "100"])
def test_debug_level_out_of_range_is_refused(client, daemon, value):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token, "setDebugLevel": value})
    assert response.status_code == 400
    assert "must be a whole number from 0 to 11" in text_of(response)
    assert sent(daemon) == []


@pytest.mark.parametrize("field, value", [("setDebugLevel", "3"), ("sendTWCMsg", "FB1B"),
                                          ("setMasterHeartbeatData", "05")])
def test_debug_posts_need_the_csrf_token(client, daemon, field, value):
    csrf_token(client)
    response = client.post("/index.php", data={field: value})
    assert response.status_code == 403
    response = client.post("/index.php", data={field: value, "csrf_token": "nope"})
    assert response.status_code == 403
    assert sent(daemon) == []


def test_send_message_page_and_quick_links_change_nothing(client, daemon):
    html = text_of(client.get("/index.php?debugTWC=1&sendTWCMsg="))
    for hex_text in ("FB1B", "FB19", "FB1A", "FCE1777766", "FBE2777766"):
        assert f"sendTWCMsg={hex_text}" in html
    # The original's link form (index.php?sendTWCMsg=FB1B&submit=1) pre-fills the form.
    response = client.get("/index.php?sendTWCMsg=FB1B&submit=1")
    assert response.status_code == 200
    assert 'name="sendTWCMsg" size="40"\n      value="FB1B"' in text_of(response)
    assert 'method="post"' in text_of(response)
    assert sent(daemon) == [] and daemon.queries == []


@pytest.mark.parametrize("typed, hex_text, waited", [
    ("FB1B", "FB1B", [3.0]),
    ("fb 1b\r\n", "FB1B", [3.0]),
    ("FB\t19 00", "FB1900", [3.0]),
    ("FCA1", "FCA1", [8.0]),                    # FCA1 silences the TWC ~5 s
    ("FBE2777766" + "00" * 10, "FBE2777766" + "00" * 10, [3.0]),   # 15 bytes
])
def test_send_message_sends_waits_and_shows_the_response(app, client, daemon, typed, hex_text,
                                                         waited):
    token = csrf_token(client)
    daemon.last_twc_response = "FD 1B 04 05 03 00 00 00 00 00 00 00 00 00 00 2C"
    response = client.post("/index.php", data={"csrf_token": token, "sendTWCMsg": typed})
    assert response.status_code == 200
    daemon.flush()
    assert daemon.commands == [f"sendTWCMsg={hex_text}"]
    assert daemon.queries == ["getStatus", "getLastTWCMsgResponse"]
    assert app.extensions["slept"] == waited
    text = Form(text_of(response)).text
    assert "Response: FD 1B 04 05 03" in text
    assert "Firmware version: 4.5.3" in text


@pytest.mark.parametrize("reply, decoded", [
    ("FD 19 41 31 38 44 30 30 31 32 33 34 35 00 00 00 00 00 00 00 9C",
     "(S)TSN: A18D0012345"),
    ("FD 1A 31 30 38 33 00 00 00 00 00 00 00 00 00 00 00 00 00 00 4B", "Model: 1083"),
    ("FD 1B 04 05 03 00 00 00 00 00 00 00 00 00 00 2C", "Firmware version: 4.5.3"),
])
def test_send_message_decodes_debug_replies(client, daemon, reply, decoded):
    token = csrf_token(client)
    daemon.last_twc_response = reply
    response = client.post("/index.php", data={"csrf_token": token, "sendTWCMsg": "FB19"})
    text = Form(text_of(response)).text
    assert f"Response: {reply}" in text
    assert f"Decoded response {decoded}" in text


def test_send_message_without_reply_shows_none(client, daemon):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token, "sendTWCMsg": "FB1A"})
    text = Form(text_of(response)).text
    assert "Response: None" in text and "Decoded" not in text


def test_send_message_response_is_escaped(client, daemon):
    token = csrf_token(client)
    daemon.last_twc_response = "<script>alert(1)</script>"
    html = text_of(client.post("/index.php", data={"csrf_token": token, "sendTWCMsg": "FB1A"}))
    assert "<script>alert" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("typed, message", [
    ("", "Enter at least 2 bytes"),
    ("FB", "Enter at least 2 bytes"),
    ("FB1", "odd number of hex digits"),
    ("FB1G", "is not hex"),
    ("FB-1B", "is not hex"),
    ("0x FB1B", "is not hex"),
    ("FB1B" + "00" * 14, "16 bytes is too long: at most 15 bytes"),
    ("FC19", "Message type FC19 is refused"),
    ("fc1a00", "Message type FC1A is refused"),
    ("FB E8 01", "Message type FBE8 is refused"),
    ("FBE0 7777 032E 05 0258", "Message type FBE0 is refused"),
])
def test_send_message_refuses_bad_or_blocked_and_sends_nothing(app, client, daemon, typed, message):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token, "sendTWCMsg": typed})
    assert response.status_code == 400
    assert message in Form(text_of(response)).text
    assert "Nothing was sent" in text_of(response)
    daemon.flush()
    assert daemon.commands == [] and daemon.queries == ["getStatus"]
    assert app.extensions["slept"] == []


def test_last_response_link_only_queries(client, daemon):
    daemon.last_twc_response = "FD 1A 31 30 38 33 00 00 00 00 00 00 00 00 00 00 00 00 00 00 4B"
    response = client.get("/index.php?debugTWC=1&getLastTWCMsgResponse=1")
    assert response.status_code == 200
    assert "Model: 1083" in Form(text_of(response)).text
    assert sent(daemon) == [] and daemon.queries == ["getLastTWCMsgResponse"]


def test_heartbeat_page_links_are_the_originals_and_change_nothing(client, daemon):
    html = text_of(client.get("/index.php?debugTWC=1&setMasterHeartbeatData="))
    links = re.findall(r'setMasterHeartbeatData=([0-9A-F]*)"', html)
    assert links == ["", "05", "050258", "050834", "050FA0", "093200", "0201"]
    assert "buggy 0A" in html
    response = client.get("/index.php?setMasterHeartbeatData=050834&submit=1")
    assert response.status_code == 200
    assert 'value="050834"' in text_of(response)
    assert sent(daemon) == []


@pytest.mark.parametrize("typed, command", [
    ("", "setMasterHeartbeatData="), ("05", "setMasterHeartbeatData=05"),
    ("050258", "setMasterHeartbeatData=050258"), ("05 08 34", "setMasterHeartbeatData=050834"),
    ("050fa0", "setMasterHeartbeatData=050FA0"), ("093200", "setMasterHeartbeatData=093200"),
    ("0201", "setMasterHeartbeatData=0201"),
    ("090600000000000000", "setMasterHeartbeatData=090600000000000000"),
])
def test_heartbeat_override_is_sent(client, daemon, typed, command):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token,
                                                "setMasterHeartbeatData": typed})
    assert response.status_code == 200
    assert sent(daemon) == [command]


@pytest.mark.parametrize("typed, message", [("5", "odd number"), ("0X05", "is not hex"),
                                            ("05" * 10, "at most 9 bytes")])
def test_heartbeat_override_refuses_bad_hex(client, daemon, typed, message):
    token = csrf_token(client)
    response = client.post("/index.php", data={"csrf_token": token,
                                                "setMasterHeartbeatData": typed})
    assert response.status_code == 400
    assert message in text_of(response)
    assert sent(daemon) == []


def test_dump_state_is_a_packet_query_shown_escaped(client, daemon):
    daemon.dump_text = "first <b>line</b> & more\n" + "x" * 700 + "\nlast line"
    response = client.get("/index.php?debugTWC=1&dumpState=1")
    assert response.status_code == 200
    html = text_of(response)
    pre = re.search(r"<pre[^>]*>(.*)</pre>", html, re.S).group(1)
    assert pre == ("first &lt;b&gt;line&lt;/b&gt; &amp; more\n" + "x" * 700 + "\nlast line")
    assert daemon.queries == ["dumpState"]   # three packets of 290, reassembled
    assert sent(daemon) == []
    # The original's link form works too.
    assert client.get("/index.php?dumpState=1&submit=1").status_code == 200


# --------------------------------------------------------------------- /api

def test_api_get_status(client, daemon):
    response = client.get("/api/getStatus")
    assert response.status_code == 200
    data = response.get_json()
    assert data["carsCharging"] == 1
    assert data["chargerLoadAmps"] == 15.5
    assert data["chargerLoadWatts"] == 15.5 * 230 * 3   # default config: 230 V, 3 phases
    assert data["maxAmpsToDivideAmongSlaves"] == 16.0
    assert data["currentPolicy"] == "green" and data["isGreenPolicy"] == "Yes"
    assert data["wiringMaxAmpsAllTWCs"] == 32 and data["minAmpsPerTWC"] == 6
    assert data["nonScheduledAmpsMax"] == -1 and data["scheduledChargingDaysBitmap"] == 127
    assert data["rs485LinkUp"] is True
    assert daemon.queries == ["getStatusJson"]


def test_api_load_watts_follow_the_configured_phases(daemon):
    # A unit that has not reported its phase volts: the configuration's volts x phases.
    daemon.status_json = {**daemon.status_json, "watts_per_amp": None}
    app = make_app(daemon, **{"green.volts": 240.0, "green.phases": 1})
    assert app.test_client().get("/api/getStatus").get_json()["chargerLoadWatts"] == 15.5 * 240


def test_api_get_slave_twcs(client, daemon):
    data = client.get("/api/getSlaveTWCs").get_json()
    assert set(data) == {"032E", "total"}
    unit = data["032E"]
    assert unit["TWCID"] == "032E" and unit["reportedAmpsActual"] == 15.5
    assert unit["lastAmpsOffered"] == 16 and unit["maxAmps"] == 32.0
    assert unit["state"] == 1 and unit["stateName"] == "charging"
    assert unit["voltsPhaseA"] == 231 and unit["lifetimekWh"] == 1234
    assert data["total"]["carsCharging"] == 1


def test_api_get_slave_twcs_with_no_unit(client, daemon):
    daemon.status_json = {**daemon.status_json, "slaves": []}
    data = client.get("/api/getSlaveTWCs").get_json()
    assert data == {"total": {"TWCID": "total", "carsCharging": 0, "lastAmpsOffered": 0,
                              "reportedAmpsActual": 0, "maxAmps": 0, "lifetimekWh": 0}}


@pytest.mark.parametrize("url", ["/api/getStatus", "/api/getSlaveTWCs"])
def test_api_silent_or_garbage_is_503_json(client, daemon, url):
    daemon.silent = True
    response = client.get(url)
    assert response.status_code == 503 and response.mimetype == "application/json"
    daemon.silent = False
    daemon.status_json = "{not json"
    response = client.get(url)
    assert response.status_code == 503 and response.mimetype == "application/json"
    assert_no_trace(response)


def test_api_charge_now(client, daemon):
    response = client.post("/api/chargeNow", json={"chargeNowRate": 16, "chargeNowDuration": 3600})
    assert response.status_code == 200
    assert response.get_json()["status"] == "success"
    assert sent(daemon) == ["chargeNow=16,3600"]


@pytest.mark.parametrize("body", [
    None, "not json", [1, 2], {}, {"chargeNowRate": 16}, {"chargeNowDuration": 3600},
    {"chargeNowRate": 0, "chargeNowDuration": 3600},
    {"chargeNowRate": -5, "chargeNowDuration": 3600},
    {"chargeNowRate": 241, "chargeNowDuration": 3600},
    {"chargeNowRate": 16.5, "chargeNowDuration": 3600},
    {"chargeNowRate": "16", "chargeNowDuration": 3600},
    {"chargeNowRate": True, "chargeNowDuration": 3600},
    {"chargeNowRate": 16, "chargeNowDuration": 0},
    {"chargeNowRate": 16, "chargeNowDuration": 7 * 24 * 3600 + 1},
])
def test_api_charge_now_bad_body_is_400_json_and_sends_nothing(client, daemon, body):
    if body is None:
        response = client.post("/api/chargeNow")
    elif isinstance(body, str):
        response = client.post("/api/chargeNow", data=body, content_type="application/json")
    else:
        response = client.post("/api/chargeNow", json=body)
    assert response.status_code == 400
    assert response.mimetype == "application/json" and "error" in response.get_json()
    assert sent(daemon) == []


def test_api_charge_now_form_body_is_400(client, daemon):
    response = client.post("/api/chargeNow", data={"chargeNowRate": "16",
                                                   "chargeNowDuration": "3600"})
    assert response.status_code == 400
    assert sent(daemon) == []


def test_api_cancel_charge_now(client, daemon):
    response = client.post("/api/cancelChargeNow")
    assert response.status_code == 200
    assert sent(daemon) == ["chargeNowCancel"]


@pytest.mark.parametrize("url", ["/api/chargeNow", "/api/cancelChargeNow"])
def test_api_cross_site_post_is_refused(client, daemon, url):
    response = client.post(url, json={"chargeNowRate": 16, "chargeNowDuration": 3600},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and response.mimetype == "application/json"
    assert sent(daemon) == []


@pytest.mark.parametrize("method, url", [("get", "/api/nothing"), ("post", "/api/setAmps"),
                                         ("get", "/api/getStatus/extra")])
def test_api_unknown_path_is_404_json(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 404
    assert response.mimetype == "application/json"


def test_api_get_on_post_route_is_405_json(client, daemon):
    response = client.get("/api/chargeNow")
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert response.headers["Allow"] == "POST"
    response = client.post("/api/getStatus")
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    assert sent(daemon) == [] and daemon.queries == []


# ----------------------------------------------------------------- basic auth

ALL_ROUTES = [
    ("get", "/", 200), ("get", "/index.php", 200), ("get", "/index.php?debugTWC=1", 200),
    ("get", "/index.php?debugTWC=1&dumpState=1", 200),
    ("get", "/TWCapi.php?GetStatus=1", 200), ("get", "/TWCapi.php?Boost=1", 302),
    ("get", "/TWCapi.php?CancelBoost=1", 302), ("get", "/TWCapi.php", 400),
    ("get", "/api/getStatus", 200), ("get", "/api/getSlaveTWCs", 200),
    ("post", "/api/cancelChargeNow", 200), ("post", "/api/chargeNow", 400),
    ("get", "/api/nothing", 404), ("get", "/static/style.css", 200),
    ("get", "/static/index.js", 200), ("get", "/static/vendor/jquery-3.7.1.min.js", 200),
    ("post", "/index.php", 403),   # no CSRF token: refused after the door
]


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def auth_client(daemon):
    app = make_app(daemon, **{"web.username": "garage",
                              "web.password_hash": generate_password_hash("s3cret")})
    return app.test_client()


@pytest.mark.parametrize("method, url, expected", ALL_ROUTES)
def test_basic_auth_covers_every_route(auth_client, daemon, method, url, expected):
    call = getattr(auth_client, method)
    for headers in ({}, basic("garage", "wrong"), basic("other", "s3cret"), basic("", "")):
        response = call(url, headers=headers)
        assert response.status_code == 401, (url, headers)
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert sent(daemon) == [] and daemon.queries == []
    response = call(url, headers=basic("garage", "s3cret"))
    assert response.status_code == expected, text_of(response)


@pytest.mark.parametrize("method, url, expected", ALL_ROUTES)
def test_basic_auth_is_off_by_default(client, method, url, expected):
    assert getattr(client, method)(url).status_code == expected


# ------------------------------------------------------------- no stack trace

def test_internal_error_on_json_route_is_500_without_detail(client, daemon, monkeypatch):
    def boom(_status):
        raise RuntimeError("secret-internal-detail")

    monkeypatch.setattr("www.legacy.lennybo_json", boom)
    response = client.get("/TWCapi.php?GetStatus=1")
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert_no_trace(response, "secret-internal-detail", "RuntimeError")


def test_internal_error_on_page_is_500_without_detail(client, daemon, monkeypatch):
    def boom(_status):
        raise KeyError("secret-internal-detail")

    monkeypatch.setattr(pages, "build_form", boom)
    response = client.get("/index.php")
    assert response.status_code == 500
    assert_no_trace(response, "secret-internal-detail", "KeyError")


def test_unknown_page_is_404_html(client):
    response = client.get("/nothing.php")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert_no_trace(response)


# ------------------------------------------------------------------ the sun panel

GREEN = {"state": "stale", "grid_w": -1200.0, "solar_w": 300.0, "house_w": 1500.0,
         "car_w": 0, "last_reading_at": 1_800_000_000.0, "last_error": "Inverter unreachable",
         "failing_since": 1_800_000_000.0, "reason": "no valid energy reading for 130 s"}


def test_api_green_status_and_history(client, daemon):
    daemon.json_packets["getGreenStatus"] = GREEN
    history = [{"t": 1_800_000_000 + 60 * i, "solar_w": 100 * i, "house_w": 400, "car_w": 0,
                "grid_w": 100 * i - 400} for i in range(200)]  # several packets' worth
    daemon.json_packets["getGreenHistory"] = history
    assert client.get("/api/getGreenStatus").get_json() == GREEN
    assert client.get("/api/getGreenHistory").get_json() == history


def test_api_get_status_carries_the_sun(client, daemon):
    daemon.status_json = {**daemon.status_json, "green": GREEN}
    data = client.get("/api/getStatus").get_json()
    assert (data["generationWatts"], data["consumptionWatts"], data["gridWatts"]) == (
        300.0, 1500.0, -1200.0)
    assert data["greenSourceState"] == "stale"


def test_api_green_status_daemon_silent(client, daemon):
    daemon.silent = True
    response = client.get("/api/getGreenStatus")
    assert response.status_code == 503 and "not responding" in response.get_json()["error"]


def test_dashboard_loads_the_sun_panel_from_local_files(client):
    html = client.get("/").get_data(as_text=True)
    for asset in ("vendor/uPlot-1.6.30.iife.min.js", "vendor/uPlot-1.6.30.min.css", "solar.js"):
        assert f"/static/{asset}" in html
        assert client.get(f"/static/{asset}").status_code == 200


# ---------------------------------------------------------------- the mode selector (issue 14)

NIGHT_21_07 = "setScheduledAmps=16\nstartTime=21:00\nendTime=07:00\ndays=127"


@pytest.mark.parametrize("form, expected", [
    ({"mode": "boost"}, BOOST_SETS + ["chargeNow"]),
    ({"mode": "eco-solar"}, BOOST_SETS + ["chargeNowCancel", "setGreenMode=solar"]),
    ({"mode": "eco-cheapest"}, BOOST_SETS + ["chargeNowCancel", "setGreenMode=cheapest"]),
    ({"mode": "scheduled"}, ["chargeNowCancel", "setNonScheduledAmps=0", NIGHT_21_07]),
    ({"mode": "fixed", "amps": "10"}, ["chargeNowCancel", "setNonScheduledAmps=10"]),
    ({"mode": "off"}, ["chargeNowCancel", "setNonScheduledAmps=0",
                       "setScheduledAmps=-1\nstartTime=-1:00\nendTime=-1:00\ndays=127",
                       "chargeGoalCancel"]),
])
def test_the_mode_selector_sends_each_modes_commands(client, daemon, form, expected):
    token = csrf_token(client)
    response = client.post("/mode", data={"csrf_token": token, **form})
    assert response.status_code == 303
    assert sent(daemon) == expected


def test_the_mode_selector_refuses_bad_input_and_forgery(client, daemon):
    token = csrf_token(client)
    assert client.post("/mode", data={"mode": "boost"}).status_code == 403
    for form in ({"mode": "turbo"}, {"mode": "fixed", "amps": "99"},
                 {"mode": "fixed", "amps": "x"}):
        page = client.post("/mode", data={"csrf_token": token, **form}, follow_redirects=True)
        assert "Mode: " in text_of(page) and "expected" in text_of(page)
    assert sent(daemon) == []


def test_the_night_schedule_is_configurable(daemon):
    app = make_app(daemon, **{"eco.night_amps": 10, "eco.night_start": "23:00",
                              "eco.night_end": "05:30"})
    client = app.test_client()
    assert "10 A from 23:00 to 05:30 every day (configured" in text_of(client.get("/"))
    client.get("/TWCapi.php?Boost=1")
    assert sent(daemon)[1] == "setScheduledAmps=10\nstartTime=23:00\nendTime=05:30\ndays=127"
    daemon.clear()
    off = make_app(daemon, **{"eco.night_charge": False}).test_client()
    assert "Boost and Eco set no night charge" in text_of(off.get("/"))
    off.get("/TWCapi.php?CancelBoost=1")
    assert sent(daemon)[1].startswith("setScheduledAmps=-1\n")
