// Boost/Eco dashboard: polls the LennyBo status URL every 2 s, as AmpUpdate.js did,
// and says plainly when there is no charger or no daemon.
(function () {
  "use strict";
  var POLL_MS = 2000;

  function amps(text) {
    var value = parseFloat(text);
    return isNaN(value) ? 0 : value;
  }

  function showProblem(text) {
    $("#problem").text(text).prop("hidden", !text);
  }

  function render(status) {
    var boost = amps(status.chargeNowAmps) > 0;
    $("#mode").text(boost ? "Mode BOOST" : "Mode ECO");
    $("#btnBoost").prop("hidden", boost);
    $("#btnEco").prop("hidden", !boost);
    $("#available").text(status.maxAmpsToDivideAmongSlaves + " A");
    var twcs = status.TWC || [];
    if (twcs.length === 0) {
      $("#pulling").text("–");
      showProblem("No charger on the RS-485 bus");
      return;
    }
    var total = 0;
    $.each(twcs, function (_, twc) { total += amps(twc.twcChargeSpeed); });
    $("#pulling").text(total.toFixed(2) + " A");
    showProblem("");
  }

  function refresh() {
    $.ajax({ url: "/TWCapi.php?GetStatus=1", dataType: "json", cache: false, timeout: 5000 })
      // The next poll starts 2 s after this one ends, so a slow daemon (each request
      // waits up to the 2 s IPC timeout) never piles requests up. Registered first, so
      // an error while rendering cannot stop the polling.
      .always(function () { setTimeout(refresh, POLL_MS); })
      .done(render)
      .fail(function () {
        $("#mode").text("Mode unknown");
        // No stale figures next to the warning: they may be minutes old.
        $("#available, #pulling").text("–");
        $("#btnBoost, #btnEco").prop("hidden", true);
        showProblem("TWCManager not responding");
      });
  }

  $(refresh);
})();
