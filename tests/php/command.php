<?php
// php command.php DIR TEXT [UNIX_TIME]   a one-way command (id 0), as ipcCommand sends it;
//                                        UNIX_TIME forces the time field (stale commands)
// php command.php DIR --short-body       a malformed body: pack("L", time()) only, 4 bytes
require __DIR__ . '/twc_ipc.php';

if ($argc < 3 || $argc > 4) {
    usage("DIR TEXT [UNIX_TIME] | DIR --short-body");
}
if ($argv[2] === '--short-body') {
    $ok = ipcSendRaw($argv[1], pack("L", time()));
} else {
    $ok = ipcCommand($argv[1], $argv[2], $argc == 4 ? (int)$argv[3] : null);
}
if (!$ok) {
    fwrite(STDERR, $twcIpcLastError . "\n");
    exit(1);
}
