<?php
// php query.php DIR TEXT [--packets]
// Sends TEXT as a query (random id, as the old pages did) and prints the reply, without a
// trailing newline. On timeout or error: the reason on stderr, exit status 1.
require __DIR__ . '/twc_ipc.php';

$args = array_slice($argv, 1);
$packets = in_array('--packets', $args, true);
$args = array_values(array_filter($args, function ($a) { return $a !== '--packets'; }));
if (count($args) != 2) {
    usage("DIR TEXT [--packets]");
}
$reply = ipcQuery($args[0], $args[1], $packets);
if ($reply === '') {
    fwrite(STDERR, $twcIpcLastError . "\n");
    exit(1);
}
echo $reply;
