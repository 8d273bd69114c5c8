// The sun panel: what the inverter and meter say (every 10 s) and a chart of the
// last hours (every minute), from /api/getGreenStatus and /api/getGreenHistory.
(function () {
  "use strict";
  var STATUS_MS = 10000, HISTORY_MS = 60000;
  var chart = null;

  function watts(value) {
    if (value === null || value === undefined) { return "–"; }
    return Math.abs(value) >= 1000 ? (value / 1000).toFixed(2) + " kW" : Math.round(value) + " W";
  }

  function clock(unix) {
    if (!unix) { return "never"; }
    var d = new Date(unix * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function renderStatus(g) {
    $("#solar").prop("hidden", false);
    $("#solarW").text(watts(g.solar_w));
    $("#houseW").text(watts(g.house_w));
    $("#carW").text(watts(g.car_w));
    $("#gridW").text(g.grid_w === null ? "–" :
                     (g.grid_w >= 0 ? "export " : "import ") + watts(Math.abs(g.grid_w)));
    $("#greenState").text(g.state).attr("data-state", g.state);
    $("#greenReason").text(g.reason || "");
    $("#greenAt").text(clock(g.last_reading_at));
    var problem = "";
    if (g.state === "stale") {
      problem = "No valid energy reading" + (g.failing_since ? " since " + clock(g.failing_since) : "") +
                ": green tracking offers 0 A" + (g.last_error ? " (" + g.last_error + ")" : "");
    } else if (g.state === "failing") {
      problem = "The energy source is failing: " + (g.last_error || "");
    }
    $("#greenProblem").text(problem).prop("hidden", !problem);
  }

  function refreshStatus() {
    $.ajax({ url: "/api/getGreenStatus", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refreshStatus, STATUS_MS); })
      .done(renderStatus);
  }

  function series(samples, key) {
    return samples.map(function (s) { return s[key] === null ? null : s[key] / 1000; });
  }

  function renderHistory(samples) {
    if (!window.uPlot || !samples.length) { return; }
    var data = [samples.map(function (s) { return s.t; }), series(samples, "solar_w"),
                series(samples, "house_w"), series(samples, "car_w"), series(samples, "grid_w")];
    var width = Math.min($("#chart").width() || 360, 900);
    if (chart) { chart.setData(data); chart.setSize({ width: width, height: 220 }); return; }
    chart = new uPlot({
      width: width, height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: "kW" }],
      series: [{}, { label: "Solar", stroke: "#f9a825", width: 2 },
               { label: "House", stroke: "#6d4c41", width: 1 },
               { label: "Car", stroke: "#2e7d32", width: 2 },
               { label: "Grid", stroke: "#1565c0", width: 1 }]
    }, data, document.getElementById("chart"));
  }

  function refreshHistory() {
    $.ajax({ url: "/api/getGreenHistory", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refreshHistory, HISTORY_MS); })
      .done(renderHistory);
  }

  $(function () { refreshStatus(); refreshHistory(); });
})();
