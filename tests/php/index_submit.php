<?php
// php index_submit.php DIR FIELD=VALUE ...
// Replays a submit of the original index.php main form. The fields are the form's:
//   nonScheduledAmpsMax=8 scheduledAmpsMax=10 scheduledAmpStartTime=06:00
//   scheduledAmpsEndTime=07:30 scheduledAmpsDay[0]=on scheduledAmpsDay[6]=on
//   resumeTrackGreenEnergyTime=06:30 submit=Save   (or "1-day charge, 32A", "Cancel 1-day charge")
// Each non-empty field becomes one command, in the page's order; the schedule's fields are
// joined by "\n" and the days bitmap has bit i for checkbox i (0 = Sunday). Prints each
// command sent, one per line (newlines inside a command shown as \n).
require __DIR__ . '/twc_ipc.php';

if ($argc < 2) {
    usage("DIR FIELD=VALUE ...");
}
$dir = $argv[1];
$form = [];
foreach (array_slice($argv, 2) as $arg) {
    if (!preg_match('/^([A-Za-z]+)(?:\[(\d+)\])?=(.*)$/s', $arg, $m)) {
        usage("DIR FIELD=VALUE ...   (bad field '$arg')");
    }
    if ($m[2] !== '') {
        $form[$m[1]][(int)$m[2]] = $m[3];
    } else {
        $form[$m[1]] = $m[3];
    }
}
$field = function ($name) use ($form) {
    return isset($form[$name]) && !is_array($form[$name]) ? $form[$name] : '';
};

$commands = [];
if ($field('nonScheduledAmpsMax') !== '') {
    $commands[] = "setNonScheduledAmps=" . $field('nonScheduledAmpsMax');
}
if ($field('scheduledAmpsMax') !== '') {
    $commands[] = "setScheduledAmps=" . $field('scheduledAmpsMax')
        . "\nstartTime=" . $field('scheduledAmpStartTime')
        . "\nendTime=" . $field('scheduledAmpsEndTime')
        . "\ndays=" . daysBitmap($form['scheduledAmpsDay'] ?? []);
}
if ($field('resumeTrackGreenEnergyTime') !== '') {
    $commands[] = "setResumeTrackGreenEnergyTime=" . $field('resumeTrackGreenEnergyTime');
}
$submit = $field('submit');
if (strpos($submit, "1-day charge") === 0) {
    $commands[] = "chargeNow";
} elseif ($submit === "Cancel 1-day charge") {
    $commands[] = "chargeNowCancel";
}

foreach ($commands as $command) {
    if (!ipcCommand($dir, $command)) {
        fwrite(STDERR, $twcIpcLastError . "\n");
        exit(1);
    }
    echo str_replace("\n", '\n', $command), "\n";
}
