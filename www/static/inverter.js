// The battery inverter panel (PI30): its figures every 5 s from /api/getInverterStatus; hidden
// when no inverter is configured. A stale reading shows dashes and says since when, never 0.
(function () {
  "use strict";
  var STATUS_MS = 5000;

  function fixed(value, digits, unit) {
    return (value === null || value === undefined) ? "–" : value.toFixed(digits) + " " + unit;
  }

  var clock = window.twcFormat.clock;

  function flow(watts) {
    if (watts === null || watts === undefined) { return "–"; }
    if (watts > 0) { return "charging " + Math.round(watts) + " W"; }
    if (watts < 0) { return "discharging " + Math.round(-watts) + " W"; }
    return "idle";
  }

  function render(inv) {
    $("#inverter").prop("hidden", inv === null);
    if (inv === null) { return; }
    $("#invState").text(inv.state).attr("data-state", inv.state);
    $("#invSoc").text(fixed(inv.battery_soc_pct, 0, "%"));
    $("#invBatteryV").text(fixed(inv.battery_v, 2, "V"));
    $("#invFlow").text(flow(inv.battery_w));
    $("#invPv").text(fixed(inv.pv_w, 0, "W"));
    $("#invLoad").text(fixed(inv.ac_out_w, 0, "W"));
    $("#invGridV").text(fixed(inv.grid_v, 1, "V"));
    $("#invMode").text(inv.mode ? inv.mode + " (" + inv.mode_name + ")" : "–");
    $("#invWarnings").text(inv.warnings === undefined ? "–" :
                           inv.warnings === null ? "unknown" : (inv.warnings.join(", ") || "none"));
    $("#invAt").text(clock(inv.last_update_at));
    // Show what is in force, unless the user is choosing another value.
    $("select[data-current]").each(function () {
      var key = $(this).data("current").replace("-", "_");
      if (inv[key] && !this.matches(":focus") && !$(this).data("touched")) { $(this).val(inv[key]); }
    });
    var problem = "";
    if (inv.state === "stale") {
      problem = "No answer from the inverter" + (inv.last_update_at ? " since " + clock(inv.last_update_at) : "") +
                (inv.last_error ? " (" + inv.last_error + ")" : "");
    } else if (inv.state === "failing") {
      problem = "The inverter's last reading failed: " + (inv.last_error || "");
    }
    $("#invProblem").text(problem).prop("hidden", !problem);
  }

  function refresh() {
    $.ajax({ url: "/api/getInverterStatus", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refresh, STATUS_MS); })
      .done(render)
      .fail(function () { $("#invState").text("unknown").attr("data-state", "stale"); });
  }

  $(function () {
    $("select[data-current]").on("change", function () { $(this).data("touched", true); });
    refresh();
  });
})();
