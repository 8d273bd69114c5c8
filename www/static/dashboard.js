// The dashboard: the headline (every mode), the "why" line with its countdowns, the mode
// selector with the current mode pressed, the power flow and one card per Wall Connector,
// from /api/getState every 2 s. Says plainly when there is no charger or no daemon.
(function () {
  "use strict";
  var POLL_MS = 2000;

  var watts = window.twcFormat.watts, clock = window.twcFormat.clock;

  function showProblem(text) {
    $("#problem").text(text).prop("hidden", !text);
  }

  function why(s) {
    var parts = [s.reason];
    $.each(s.chargers || [], function (_, c) {
      if (c.offer_reason && /held|spike|stuck/.test(c.offer_reason)) {
        parts.push(c.id + ": " + c.offer_reason);
      }
    });
    if (s.charge_now_amps) { parts.push("Boost " + s.charge_now_amps + " A until " + clock(s.charge_now_until)); }
    if (s.schedule) { parts.push("schedule " + s.schedule.amps + " A " + s.schedule.start + "–" + s.schedule.end); }
    if (s.tariff_period) {
      parts.push("Tempo " + (s.tempo_today || "unknown").toLowerCase() + " " +
                 (s.tariff_period === "peak" ? "peak" : "off-peak") + " " +
                 s.price_eur_kwh.toFixed(4) + " €/kWh");
    }
    if (s.plan_output_reason) { parts.push("inverter: " + s.plan_output_priority + " (" + s.plan_output_reason + ")"); }
    return parts.filter(Boolean).join(" · ");
  }

  function node(id, value, note) {
    $("#" + id + " span").text(value + (note ? " " + note : ""));
  }

  function renderFlow(s) {
    var stale = s.meter_state === "stale";
    node("flowSun", watts(s.solar_w));
    node("flowHouse", watts(s.house_w));
    node("flowCar", watts(s.car_w));
    node("flowGrid", s.grid_w === null ? "–" :
         (s.grid_w >= 0 ? "→ " + watts(s.grid_w) + " sent" : "← " + watts(-s.grid_w) + " bought"));
    $("#flowBattery").prop("hidden", s.battery_soc_pct === null);
    if (s.battery_soc_pct !== null) {
      node("flowBattery", Math.round(s.battery_soc_pct) + " %", s.battery_w === null ? "" :
           (s.battery_w >= 0 ? "+" : "") + watts(s.battery_w));
    }
    $("#flow").toggleClass("stale", stale);
    $("#flowWhen").text(stale ? "Meter: no valid reading (stale) — figures not shown" :
                        "Meter read at " + clock(s.meter_reading_at) + "; the car now");
  }

  function renderChargers(s) {
    var box = $("#chargers").empty();
    $.each(s.chargers || [], function (_, c) {
      var card = $("<div>").addClass("card").attr("data-state", c.state_name);
      card.append($("<h3>").text("Wall Connector " + c.id + " — " + c.state_name));
      card.append($("<p>").text(c.amps_drawn.toFixed(2) + " A drawn of " + c.amps_offered +
                                " A offered (max " + c.amps_max + " A)"));
      card.append($("<p>").text((c.session_kwh === null ? "no car" :
                                 "this session " + c.session_kwh.toFixed(2) + " kWh") +
                                " · lifetime " + (c.lifetime_kwh === null ? "?" : c.lifetime_kwh) + " kWh"));
      if (c.offer_reason) { card.append($("<p>").addClass("why").text(c.offer_reason)); }
      box.append(card);
    });
  }

  function render(s) {
    $("#mode").text("Mode: " + (s.mode_name || s.mode));
    $("#why").text(why(s));
    $("#modes button").attr("aria-pressed", "false");
    if (s.mode_choice) { $("#mode-" + s.mode_choice).attr("aria-pressed", "true"); }
    $("#available").text(s.pool_amps.toFixed(2) + " A");
    var total = 0;
    $.each(s.chargers || [], function (_, c) { total += c.amps_drawn >= 1 ? c.amps_drawn : 0; });
    $("#pulling").text((s.chargers || []).length ? total.toFixed(2) + " A" : "–");
    renderFlow(s);
    renderChargers(s);
    showProblem((s.chargers || []).length ? "" : "No charger on the RS-485 bus");
  }

  function refresh() {
    $.ajax({ url: "/api/getState", dataType: "json", cache: false, timeout: 5000 })
      // The next poll starts 2 s after this one ends, so a slow daemon (each request
      // waits up to the 2 s IPC timeout) never piles requests up. Registered first, so
      // an error while rendering cannot stop the polling.
      .always(function () { setTimeout(refresh, POLL_MS); })
      .done(render)
      .fail(function () {
        $("#mode").text("Mode unknown");
        $("#why").text("");
        // No stale figures next to the warning: they may be minutes old.
        $("#available, #pulling").text("–");
        $("#chargers").empty();
        showProblem("TWCManager not responding");
      });
  }

  $(refresh);
})();
