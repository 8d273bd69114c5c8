<?php
// php stress.php DIR N ID_LO ID_HI [--scan]
// N sequential queries `ping=<pid>-<i>`, each with a random id from [ID_LO, ID_HI], each
// expecting `pong=<pid>-<i>`. Prints one summary line; exit status 1 on any loss or mismatch.
// --scan: look at the whole queue each 100 ms round instead of only its first message
// (see ipcQuery: several old-page clients polling in step starve each other).
require __DIR__ . '/twc_ipc.php';

$args = array_slice($argv, 1);
$scan = in_array('--scan', $args, true);
$args = array_values(array_filter($args, function ($a) { return $a !== '--scan'; }));
if (count($args) != 4) {
    usage("DIR N ID_LO ID_HI [--scan]");
}
[$dir, $count, $idLo, $idHi] = [$args[0], (int)$args[1], (int)$args[2], (int)$args[3]];
if ($idLo < 1 || $idHi > 65535 || $idLo > $idHi) {
    usage("DIR N ID_LO ID_HI [--scan]   (1 <= ID_LO <= ID_HI <= 65535)");
}
$pid = getmypid();
$ok = $lost = $wrong = 0;
$firstProblem = '';
$slowest = 0.0;
$started = microtime(true);
for ($i = 0; $i < $count; $i++) {
    $token = "$pid-$i";
    $t0 = microtime(true);
    $reply = ipcQuery($dir, "ping=$token", false, $idLo, $idHi, $scan);
    $slowest = max($slowest, microtime(true) - $t0);
    if ($reply === "pong=$token") {
        $ok++;
        continue;
    }
    if ($reply === '') {
        $lost++;
    } else {
        $wrong++;
    }
    if ($firstProblem === '') {
        $firstProblem = " first: query $i got " . var_export($reply, true)
            . ($twcIpcLastError !== '' ? " ($twcIpcLastError)" : '');
    }
}
printf("stress pid=%d ids=%d..%d%s ok=%d lost=%d wrong=%d elapsed=%.1fs slowest=%.2fs%s\n",
       $pid, $idLo, $idHi, $scan ? " scan" : "", $ok, $lost, $wrong,
       microtime(true) - $started, $slowest, $firstProblem);
exit($lost || $wrong ? 1 : 0);
