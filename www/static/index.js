// The control page (index.php): hide the schedule's times and days while scheduled power
// is Disabled, and the resume time while non-scheduled power tracks green energy, as the
// original page did. Hidden fields are still sent, so Save keeps them.
(function () {
  "use strict";
  function follow(selectId, blockId) {
    var select = document.getElementById(selectId);
    var block = document.getElementById(blockId);
    if (!select || !block) { return; }
    function update() { block.hidden = select.value === "-1"; }
    select.addEventListener("change", update);
    update();
  }
  follow("scheduledAmpsMax", "scheduledPower");
  follow("nonScheduledAmpsMax", "resumeGreen");
})();
