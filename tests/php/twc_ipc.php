<?php
// A PHP client for the TWCManager SysV message queue, written from the description of
// the old pages' ipcCommand / ipcQuery (original-program.md §8.3-§8.5), so the tests
// can talk to our daemon the way index.php and LennyBo's TWCapi.php did.
//
//   key    = ftok($dir, "T"); queue = msg_get_queue(key, 0666)   (creates it if missing)
//   body   = pack("LSa*", time, id, text): u32 time + u16 id, native order, then ASCII
//   type 2 = request (web -> manager), type 1 = reply (manager -> web)
//
// Options beyond the old pages, for the tests only: an id range and a queue scan for
// ipcQuery (the stress test), a forced `time` field for ipcCommand (stale commands), and
// ipcSendRaw for malformed bodies. Without them it behaves as the pages did.

const TWC_REQUEST_TYPE = 2;
const TWC_REPLY_TYPE = 1;
const TWC_REPLY_MAX_BYTES = 300;     // the old pages' msg_receive size (296 is the largest reply)
const TWC_POLL_LOOPS = 50;           // 50 x 100 ms = the old pages' 5 s budget
const TWC_POLL_SLEEP_US = 100000;
const TWC_REQUEUE_MAX_AGE_S = 30;    // a foreign reply younger than this is put back
const TWC_ENOMSG = 42;               // "nothing in the queue yet" (Linux errno)

$twcIpcLastError = '';

function twcQueue($dir)
{
    $key = ftok($dir, "T");
    if ($key === -1) {
        throw new RuntimeException("ftok($dir, 'T') failed: does the directory exist?");
    }
    $queue = msg_get_queue($key, 0666);
    if ($queue === false) {
        throw new RuntimeException(sprintf("msg_get_queue(0x%08x) failed", $key));
    }
    return $queue;
}

// Put raw bytes on the queue (a request unless $type says otherwise), unserialized and
// non-blocking, as the pages sent.
function ipcSendRaw($dir, $body, $type = TWC_REQUEST_TYPE)
{
    global $twcIpcLastError;
    $err = 0;
    if (!msg_send(twcQueue($dir), $type, $body, false, false, $err)) {
        $twcIpcLastError = "msg_send failed, error code $err";
        return false;
    }
    return true;
}

// Fire and forget: id 0, no reply expected. $time defaults to now.
function ipcCommand($dir, $text, $time = null)
{
    return ipcSendRaw($dir, pack("LSa*", $time === null ? time() : $time, 0, $text));
}

// Send $text with a random id and wait (polling) for the reply with the same id.
// Returns the reply text, or '' on timeout or error ($twcIpcLastError says which).
// In packet mode the first reply carries one byte N, then N packets follow and are joined.
//
// As the old pages: at most 50 rounds; each round takes ONE message of type 1 without
// waiting; ours is returned (a packet of ours starts the next round at once, as the page's
// `continue` did, but still uses up a round); anyone else's is put back at the end of the
// queue if younger than 30 s, else dropped; then sleep 100 ms.
//
// $scan = true (not in the old pages; the stress test's choice): each round looks at every
// message in the queue once instead of only the first. With one message taken per round,
// K clients polling in step every 100 ms rotate a queue of K replies by exactly K per
// cycle, so each keeps seeing the same foreign reply and none gets its own until a timeout
// changes K: the old pages starve each other under concurrency. That is a limit of the
// original client, not of the server; scanning keeps the protocol (ids, put-back, 30 s rule)
// and removes the starvation.
function ipcQuery($dir, $text, $packets = false, $idLo = 1, $idHi = 65535, $scan = false)
{
    global $twcIpcLastError;
    $twcIpcLastError = '';
    $queue = twcQueue($dir);
    $id = rand($idLo, $idHi);
    $err = 0;
    if (!msg_send($queue, TWC_REQUEST_TYPE, pack("LSa*", time(), $id, $text), false, false, $err)) {
        $twcIpcLastError = "msg_send failed, error code $err";
        return '';
    }

    $expected = null;   // packet mode: N, once the first reply has come
    $parts = [];
    for ($round = 0; $round < TWC_POLL_LOOPS; $round++) {
        // How many messages to look at this round: 1, or (scan) all that are queued now.
        $looks = $scan ? max(1, msg_stat_queue($queue)['msg_qnum']) : 1;
        $ours = false;
        for ($look = 0; $look < $looks; $look++) {
            $type = 0;
            $raw = '';
            $got = msg_receive($queue, TWC_REPLY_TYPE, $type, TWC_REPLY_MAX_BYTES, $raw, false,
                               MSG_IPC_NOWAIT | MSG_NOERROR, $err);
            if (!$got) {
                if ($err != TWC_ENOMSG) {
                    $twcIpcLastError = "msg_receive failed, error code $err";
                    return '';
                }
                break;      // nothing (more) of type 1 for now
            }
            if (strlen($raw) < 6) {
                continue;   // neither side sends this; drop it rather than choke on unpack
            }
            $reply = unpack("Ltime/SID/a*msg", $raw);
            if ($reply['ID'] == $id) {
                if (!$packets) {
                    return $reply['msg'];
                }
                if ($expected === null) {
                    $expected = ord($reply['msg'][0] ?? "\0");
                } else {
                    $parts[] = $reply['msg'];
                }
                if (count($parts) >= $expected) {
                    return implode('', $parts);
                }
                $ours = true;
                break;      // the next packet is likely queued already: no sleep
            }
            if (time() - $reply['time'] < TWC_REQUEUE_MAX_AGE_S) {
                // Someone else's reply: back to the end of the queue, same time and id.
                msg_send($queue, TWC_REPLY_TYPE,
                         pack("LSa*", $reply['time'], $reply['ID'], $reply['msg']), false, false, $err);
            }
        }
        if (!$ours) {
            usleep(TWC_POLL_SLEEP_US);
        }
    }
    $twcIpcLastError = "Timed out waiting for response from TWCManager script. "
        . "Is \$twcScriptDir ($dir) the directory TWCManager uses for its queue?";
    return '';
}

// The `days` bitmap of index.php: checkbox scheduledAmpsDay[i] sets bit i, 0 = Sunday.
function daysBitmap($checked)
{
    $bitmap = 0;
    foreach ((array)$checked as $day => $value) {
        $day = (int)$day;
        if ($day >= 0 && $day <= 6 && $value !== '') {
            $bitmap |= 1 << $day;
        }
    }
    return $bitmap;
}

// LennyBo's TWCapi.php Boost / CancelBoost: the same three set commands, then chargeNow or
// chargeNowCancel. The schedule fields are separated by SPACES, exactly as LennyBo sent them
// (the original ignored that command; we accept it, decisions §4.12). Each command is echoed
// as `<b>command</b><br>`, as TWCapi.php did before its redirect.
function lennyBoMode($dir, $boost)
{
    $commands = [
        "setNonScheduledAmps=-1",
        "setScheduledAmps=16 startTime=21:00 endTime=07:00 days=127",
        "setResumeTrackGreenEnergyTime=-1:00",
        $boost ? "chargeNow" : "chargeNowCancel",
    ];
    foreach ($commands as $command) {
        echo "<b>$command</b><br>";
        if (!ipcCommand($dir, $command)) {
            return false;
        }
    }
    return true;
}

function usage($text)
{
    fwrite(STDERR, "usage: php " . basename($_SERVER['argv'][0]) . " $text\n");
    exit(64);
}
