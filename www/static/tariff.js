// The Tempo panel: today's and tomorrow's colour with their source, the period and the price
// now, from /api/getTariffStatus every 60 s; hidden without a tariff.
(function () {
  "use strict";
  var STATUS_MS = 60000;
  var NAMES = { BLUE: "blue", WHITE: "white", RED: "red" };

  function day(d) {
    if (d.colour) {
      return NAMES[d.colour] + " (" + (d.source === "manual" ? "set by hand" : d.source) + ")";
    }
    return "unknown — assuming " + NAMES[d.assumed];
  }

  function hhmm(iso) {
    return iso ? iso.substring(11, 16) : "–";
  }

  function render(t) {
    $("#tariff").prop("hidden", t === null);
    if (t === null) { return; }
    $("#tempoToday").text(day(t.today)).attr("data-colour", t.today.colour || t.today.assumed);
    $("#tempoTomorrow").text(day(t.tomorrow))
      .attr("data-colour", t.tomorrow.colour || t.tomorrow.assumed);
    $("#tempoNow").text((t.period === "peak" ? "peak" : "off-peak") + ", " +
                        t.price_eur_kwh.toFixed(4) + " €/kWh until " + hhmm(t.next_change_at));
    $("#tempoNote").text(t.tomorrow.colour ? "" : (t.tomorrow.note || ""));
    $("#tempoProblem").text(t.last_error ? "Tempo: " + t.last_error : "")
      .prop("hidden", !t.last_error);
    if (!$("#tempoDate").val()) { $("#tempoDate").val(t.tomorrow.date); }
    renderPlan(t.plan);
  }

  function renderPlan(plan) {
    $("#planBox").prop("hidden", !plan);
    if (!plan) { return; }
    var b = plan.battery;
    $("#planAutomate").text(plan.automate ? "applied" : "advice only");
    $("#planOutput").text(b ? "Inverter output: " + b.output_priority + " — " + b.output_reason : "");
    $("#planCharger").text(b ? "Charger: " + b.charger_priority + " — " + b.charger_reason : "");
    $("#planTarget").text(b ? "Battery by " + b.next_peak_day + " 06:00: " +
                          Math.round(b.target_soc_pct) + " % — " + b.target_reason : "");
    $("#planFallback").text(plan.fallback || "").prop("hidden", !plan.fallback);
    var rows = $("<tbody>");
    $.each(plan.car, function (_, w) {
      rows.append($("<tr>").attr("data-colour", w.colour).append(
        $("<td>").text(hhmm(w.start) + "–" + hhmm(w.end)),
        $("<td>").text(NAMES[w.colour] + (w.colour_known ? "" : "?")),
        $("<td>").text(w.price_eur_kwh.toFixed(4) + " €"),
        $("<td>").text("car: " + w.car_uses)));
    });
    $("#planCar").empty().append(rows);
    // The next 24 h as one bar: a segment per window, as wide as it is long, as tall as its
    // price (the dearest window full height), coloured by its Tempo colour.
    var total = 0, dearest = 0;
    $.each(plan.car, function (_, w) {
      total += Date.parse(w.end) - Date.parse(w.start);
      dearest = Math.max(dearest, w.price_eur_kwh);
    });
    var bar = $("#planBar").empty();
    $.each(plan.car, function (_, w) {
      var share = (Date.parse(w.end) - Date.parse(w.start)) / total;
      var height = dearest ? Math.max(15, 100 * w.price_eur_kwh / dearest) : 100;
      bar.append($("<div>").addClass("seg").attr("data-colour", w.colour)
        .attr("title", hhmm(w.start) + "–" + hhmm(w.end) + " " + w.price_eur_kwh.toFixed(4) +
              " €/kWh, car: " + w.car_uses)
        .css({ width: (100 * share) + "%", height: height + "%" })
        .append($("<span>").text(share > 0.12 ? hhmm(w.start) : "")));
    });
  }

  function refresh() {
    $.ajax({ url: "/api/getTariffStatus", dataType: "json", cache: false, timeout: 5000 })
      .always(function () { setTimeout(refresh, STATUS_MS); })
      .done(render);
  }

  $(refresh);
})();
