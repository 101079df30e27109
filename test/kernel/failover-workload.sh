#!/bin/bash
# Guest script (run by /work/shared/kernel-client/run-guest.sh inside a QEMU guest, as root) for
# test/kernel/cluster.test.ts: the stock Linux NFSv3 client, mounted `hard` on a hanfs cluster's
# service address, works while the host SIGKILLs the Raft leader again and again.
#
# Mounts with the command the cluster printed (HANFS_MOUNT_CMD, adapted to $NFS_HOST and /mnt/nfs,
# HANFS_KC_MOUNT_OPTS appended to its -o options), starts a heartbeat (a small file rewritten on the
# mount, then a timestamp line into /tmp/hb.log on the guest's own disk, every 100 ms), tells the host
# it has started ($KC_OUT/started), then runs two loops at the same time, so that every kill hits both:
#   fio random writes with crc32c verification (O_DIRECT, HANFS_KC_FIO_MB MiB, read back and checked)
#   git clone --no-local of the bare repository the host shares ($KC_SHARE/repo.git) onto the mount
#   + git fsck --full --strict + the same HEAD
# each round after round, until the host says it is done killing ($KC_OUT/kills-done appears; the run
# folder is shared with cache=none) and its round in progress has finished; then every clone is fsck'ed again from a cold
# cache, the heartbeat is stopped and copied to $KC_OUT/hb.log, the kernel log is checked for I/O
# errors, the work folder removed, the mount unmounted. Prints PASS/FAIL lines into
# $KC_OUT/results.txt; exit status = number of failures.
set -u
export LC_ALL=C
MNT=/mnt/nfs
FIO_MB=${HANFS_KC_FIO_MB:-16}
MAX_ROUNDS=${HANFS_KC_MAX_ROUNDS:-10}
EXTRA_OPTS=${HANFS_KC_MOUNT_OPTS:-}
OUT=${KC_OUT:-/tmp}
RES=$OUT/results.txt
: > "$RES"
fails=0
now() { date +%s.%N; }
# check NAME CMD...: run CMD, print PASS/FAIL with its duration
check() {
    local name=$1; shift
    local s e rc
    s=$(now)
    "$@" > /tmp/check.$BASHPID.out 2>&1; rc=$?
    e=$(now)
    if [ "$rc" = 0 ]; then
        awk -v n="$name" -v s="$s" -v e="$e" 'BEGIN{printf "PASS %-28s %8.2fs (%.1f .. %.1f)\n", n, e-s, s, e}' | tee -a "$RES"
    else
        fails=$((fails + 1))
        awk -v n="$name" -v r="$rc" -v s="$s" -v e="$e" 'BEGIN{printf "FAIL %-28s rc=%d %8.2fs (%.1f .. %.1f)\n", n, r, e-s, s, e}' | tee -a "$RES"
        tail -n 30 /tmp/check.$BASHPID.out | sed 's/^/    /' | tee -a "$RES"
    fi
    return 0
}

mkdir -p "$MNT"
cmd=${HANFS_MOUNT_CMD:-"mount -t nfs -o vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,nolock,hard,timeo=30,retrans=2 127.0.0.1:$EXPORT /mnt"}
# printed for a client on the same host: 127.0.0.1 -> $NFS_HOST, /mnt -> $MNT; extra options appended
cmd=$(printf '%s' "$cmd" | sed -E "s#[0-9.]+:(/[^ ]*) /mnt\$#$NFS_HOST:\\1 $MNT#")
if [ -n "$EXTRA_OPTS" ]; then cmd=$(printf '%s' "$cmd" | sed -E "s#-o ([^ ]+)#-o \\1,$EXTRA_OPTS#"); fi
echo "mount command: $cmd" | tee -a "$RES"
check mount bash -c "$cmd"
if ! mountpoint -q "$MNT"; then
    echo "FAIL not mounted; giving up" | tee -a "$RES"
    exit 1
fi
grep " $MNT " /proc/mounts | tee -a "$RES"
W=$MNT/kcf-$$
mkdir -p "$W" || { echo "FAIL mkdir $W" | tee -a "$RES"; exit 1; }

# the repository cloned in every round: a bare repository the host made (KC_SHARE_DIR)
REPO=${KC_SHARE:-/kc/share}/repo.git
export HOME=/root
git config --global --add safe.directory '*'
HEAD_WANT=$(git --git-dir="$REPO" rev-parse HEAD) || { echo "FAIL no repository at $REPO" | tee -a "$RES"; exit 1; }

# heartbeat: the time between two lines of /tmp/hb.log is how long one small write to the mount
# (open, write, close: close-to-open flushes it to the server, a hard mount blocks there) plus a
# 100 ms pause took; a failed write is an ERR line. Builtins only (no process starts: under TCG a
# fork costs more than the write); the pause is a read with a timeout on a fifo nobody writes.
heartbeat() {
    local i=0
    mkfifo /tmp/hb.fifo && exec 9<>/tmp/hb.fifo
    while [ ! -e /tmp/hb.stop ]; do
        i=$((i + 1))
        if ! printf '%s %s\n' "$i" "$EPOCHREALTIME" 2>>/tmp/hb.err > "$W/hb"; then
            echo "ERR $EPOCHREALTIME" >> /tmp/hb.log
        fi
        echo "$EPOCHREALTIME" >> /tmp/hb.log
        read -r -t 0.1 -u 9 _
    done
}
: > /tmp/hb.log
heartbeat &
hb_pid=$!

fio_round() {
    fio --name=r$1 --filename="$W/fio-$1.dat" --size=${FIO_MB}M --rw=randwrite --bs=16k \
        --ioengine=psync --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --runtime=600 --group_reporting || return 1
    rm -f "$W/fio-$1.dat"
}
git_round() {
    git clone -q --no-local "$REPO" "$W/clone-$1" || return 1
    git -C "$W/clone-$1" fsck --full --strict || return 1
    [ "$(git -C "$W/clone-$1" rev-parse HEAD)" = "$HEAD_WANT" ]
}
# loop NAME FUNC: rounds of FUNC until the host is done killing; exit status = failures
loop() {
    local name=$1 fn=$2 r=0
    fails=0
    while [ $r -lt "$MAX_ROUNDS" ]; do
        r=$((r + 1))
        check "$name-round-$r" "$fn" $r
        echo $r > /tmp/$name.rounds
        [ -e "$OUT/kills-done" ] && break
    done
    exit $fails
}
(loop fio fio_round) &
fio_pid=$!
(loop git git_round) &
git_pid=$!
now > "$OUT/started.tmp" && mv "$OUT/started.tmp" "$OUT/started"
wait $fio_pid; fails=$((fails + $?))
wait $git_pid; fails=$((fails + $?))
r=$(cat /tmp/git.rounds 2>/dev/null || echo 0)
echo "rounds: fio $(cat /tmp/fio.rounds 2>/dev/null), git $r; kills-done seen: $([ -e "$OUT/kills-done" ] && echo yes || echo no)" | tee -a "$RES"

# everything written across the kills, read back from a cold cache
refsck() {
    echo 3 > /proc/sys/vm/drop_caches
    local i
    for i in $(seq 1 $r); do
        git -C "$W/clone-$i" fsck --full --strict || return 1
        [ "$(git -C "$W/clone-$i" rev-parse HEAD)" = "$HEAD_WANT" ] || return 1
    done
}
check "all-clones-fsck-cold" refsck

touch /tmp/hb.stop
wait "$hb_pid"
cp /tmp/hb.log "$OUT/hb.log"
if grep -q ERR /tmp/hb.log; then
    fails=$((fails + 1))
    echo "FAIL heartbeat writes failed: $(grep -c ERR /tmp/hb.log)" | tee -a "$RES"
    tail -5 /tmp/hb.err | sed 's/^/    /' | tee -a "$RES"
else
    echo "PASS heartbeat $(wc -l < /tmp/hb.log) writes, none failed" | tee -a "$RES"
fi
dmesg > "$OUT/dmesg.txt"
grep -iE 'nfs|rpc' "$OUT/dmesg.txt" | tail -40 | sed 's/^/    dmesg: /' | tee -a "$RES"
if grep -iE 'I/O error|error -5\b|blk_update_request' "$OUT/dmesg.txt" > /tmp/ioerr.txt; then
    fails=$((fails + 1))
    echo "FAIL the kernel logged I/O errors" | tee -a "$RES"
    head -20 /tmp/ioerr.txt | sed 's/^/    /' | tee -a "$RES"
fi

cd /
check "cleanup" rm -rf "$W"
check "umount" umount "$MNT"
echo "kernel failover workload: $fails failure(s)" | tee -a "$RES"
exit "$fails"
