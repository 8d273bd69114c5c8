<?php
// php eco.php DIR   replays LennyBo's TWCapi.php?CancelBoost=1 (the "Mode ECO" button)
require __DIR__ . '/twc_ipc.php';

if ($argc != 2) {
    usage("DIR");
}
exit(lennyBoMode($argv[1], false) ? 0 : 1);
