// The charge goal: "N kWh by HH:MM", what is done, and when the grid will top it up at what
// price (sun first, then the cheapest slots), from /api/getChargeGoal every 30 s.
(function () {
  "use strict";
  var STATUS_MS = 30000;

  function hhmm(value) {
    var d = typeof value === "number" ? new Date(value * 1000) : new Date(Date.parse(value));
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  function render(goal) {
    $("#goalCancel").prop("hidden", !goal);
    var list = $("#goalWindows").empty();
    if (!goal) {
      $("#goalText").text("None: the car follows the mode above.");
      return;
    }
    var text = goal.kwh + " kWh by " + hhmm(goal.by) + ": " + goal.done_kwh.toFixed(1) +
               " kWh done, " + goal.need_kwh.toFixed(1) + " to go. ";
    if (!goal.grid_windows.length) {
      text += "Nothing to buy: the sun has it.";
    } else {
      text += goal.enough ? "The sun first, then from the grid:" :
        "Even at full current the time left is too short; from the grid:";
    }
    $("#goalText").text(text);
    $.each(goal.grid_windows, function (_, w) {
      list.append($("<li>").text(hhmm(w.start) + "–" + hhmm(w.end) +
        (w.price_eur_kwh === null ? "" : " at " + w.price_eur_kwh.toFixed(4) + " €/kWh")));
    });
  }

  function refresh() {
    $.ajax({ url: "/api/getChargeGoal", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refresh, STATUS_MS); })
      .done(render);
  }

  $(refresh);
})();
