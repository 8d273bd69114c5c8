// The dashboard scripts' shared formatting: watts as W or kW, a time of day in 24-hour local
// time (whatever the browser's locale), "–" or "never" for what is unknown.
(function () {
  "use strict";

  function pad(n) { return ("0" + n).slice(-2); }

  window.twcFormat = {
    pad: pad,
    watts: function (value) {
      if (value === null || value === undefined) { return "–"; }
      return Math.abs(value) >= 1000 ? (value / 1000).toFixed(2) + " kW"
                                     : Math.round(value) + " W";
    },
    clock: function (unix) {
      if (!unix) { return "never"; }
      var d = new Date(unix * 1000);
      return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    }
  };
})();
