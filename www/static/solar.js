// The sun panel: what the meter says (every 10 s, /api/getGreenStatus), a chart of the last
// 24 h from the history store (every minute, /api/getHistory: one point a minute, kept across
// restarts) in 24-hour local time, and the daily totals.
(function () {
  "use strict";
  var STATUS_MS = 10000, HISTORY_MS = 60000, HOUR_S = 3600;
  var chart = null;

  var watts = window.twcFormat.watts, clock = window.twcFormat.clock, pad = window.twcFormat.pad;

  function renderStatus(g) {
    $("#solar").prop("hidden", false);
    var stale = g.state === "stale";
    $("#solarW").text(stale ? "–" : watts(g.solar_w));
    $("#houseW").text(stale ? "–" : watts(g.house_w));
    $("#carW").text(watts(g.car_w));
    $("#gridW").text(stale || g.grid_w === null ? "–" :
                     (g.grid_w >= 0 ? "sent " : "bought ") + watts(Math.abs(g.grid_w)));
    $("#greenState").text(g.state).attr("data-state", g.state);
    $("#greenReason").text(g.reason || "");
    $("#greenAt").text(clock(g.last_reading_at));
    var problem = "";
    if (stale) {
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

  function kw(points, key) {
    return points.map(function (p) { return p[key] === null ? null : p[key] / 1000; });
  }

  // 24-hour local time; days as day/month when the chart spans more than two days.
  function timeLabels(u, splits) {
    var span = u.scales.x.max - u.scales.x.min;
    return splits.map(function (v) {
      var d = new Date(v * 1000);
      return span > 2 * 86400 ? pad(d.getDate()) + "/" + pad(d.getMonth() + 1)
                              : pad(d.getHours()) + ":" + pad(d.getMinutes());
    });
  }

  function xRange(u, min, max) {
    // One point or thirty days: at least an hour wide.
    if (min === null || max - min < HOUR_S) {
      var mid = min === null ? Date.now() / 1000 : (min + max) / 2;
      return [mid - HOUR_S / 2, mid + HOUR_S / 2];
    }
    return [min, max];
  }

  function yRange(u, min, max) {
    // At least 1 kW high, and 0 always shown (the grid's sign).
    if (min === null) { return [-1, 1]; }
    return [Math.min(min, 0), Math.max(max, min + 1, 0.5)];
  }

  // For the browser test: the chart's pure parts.
  window.twcChartParts = { timeLabels: timeLabels, xRange: xRange, yRange: yRange };

  function renderChart(points) {
    if (!window.uPlot) { return; }
    var data = [points.map(function (p) { return p.t; }), kw(points, "solar_w"),
                kw(points, "house_w"), kw(points, "car_w"), kw(points, "grid_w")];
    var width = Math.max(Math.min($("#chart").width() || 320, 900), 200);
    $("#chartRange").text(points.length ? points.length + " points, one a minute, from " +
                          clock(points[0].t).slice(0, 5) : "no points yet");
    if (chart) { chart.setData(data); chart.setSize({ width: width, height: 220 }); return; }
    chart = new uPlot({
      width: width, height: 220,
      legend: { live: false },
      scales: { x: { time: true, range: xRange }, y: { range: yRange } },
      axes: [{ values: timeLabels }, { label: "kW" }],
      series: [{}, { label: "Solar", stroke: "#f9a825", width: 2 },
               { label: "House (without the car)", stroke: "#6d4c41", width: 1 },
               { label: "Car", stroke: "#2e7d32", width: 2 },
               { label: "Grid (+ sent, − bought)", stroke: "#1565c0", width: 1 }]
    }, data, document.getElementById("chart"));
  }

  function renderDays(days) {
    var table = $("#daily").empty(), names = Object.keys(days).sort().reverse();
    if (!names.length) { return; }
    table.append($("<tr>").append(["Day", "Sun → car", "Grid → car", "Sent", "Bought"]
      .map(function (h) { return $("<th>").text(h); })));
    $.each(names, function (_, day) {
      var d = days[day], f = function (k) { return (d[k] || 0).toFixed(2) + " kWh"; };
      table.append($("<tr>").append(
        $("<td>").text(day.slice(8, 10) + "/" + day.slice(5, 7)),
        $("<td>").text(f("car_sun_kwh")), $("<td>").text(f("car_grid_kwh")),
        $("<td>").text(f("export_kwh")), $("<td>").text(f("import_kwh"))));
    });
  }

  function renderSessions(sessions) {
    var list = $("#sessions").empty();
    $.each((sessions || []).slice(-5).reverse(), function (_, s) {
      list.append($("<li>").text("Session on " + s.charger + ": " + clock(s.start).slice(0, 5) +
                                 "–" + clock(s.end).slice(0, 5) + ", " + s.kwh.toFixed(2) + " kWh"));
    });
  }

  function refreshHistory() {
    $.ajax({ url: "/api/getHistory?hours=24", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refreshHistory, HISTORY_MS); })
      .done(function (h) { renderChart(h.minutes); renderDays(h.days); renderSessions(h.sessions); });
  }

  $(function () {
    refreshStatus();
    refreshHistory();
    $(window).on("resize", function () {
      if (chart) { chart.setSize({ width: Math.max(Math.min($("#chart").width(), 900), 200), height: 220 }); }
    });
  });
})();
