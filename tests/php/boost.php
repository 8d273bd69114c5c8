<?php
// php boost.php DIR   replays LennyBo's TWCapi.php?Boost=1 (the echo included; the
// Location redirect has no meaning on the command line)
require __DIR__ . '/twc_ipc.php';

if ($argc != 2) {
    usage("DIR");
}
exit(lennyBoMode($argv[1], true) ? 0 : 1);
