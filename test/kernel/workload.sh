#!/bin/bash
# Guest script (run by /work/shared/kernel-client/run-guest.sh inside a QEMU guest, as root):
# the stock Linux NFSv3 client against hanfs. Mounts with the command the daemon printed
# (HANFS_MOUNT_CMD, adapted to $NFS_HOST and /mnt/nfs), then: a large O_DIRECT dd written and
# read back, a tree of small files copied with cp -a and verified, fio random writes with crc32c
# verification, a git repository cloned onto the mount and fsck'ed, rename/link/symlink/chmod/
# truncate from the shell; unmounts. Prints PASS/FAIL lines; exit status = number of failures.
set -u
export LC_ALL=C
MNT=/mnt/nfs
BIG_MB=${HANFS_KC_BIG_MB:-256}
SMALL_FILES=${HANFS_KC_SMALL_FILES:-2000}
FIO_MB=${HANFS_KC_FIO_MB:-32}
RES=${KC_OUT:-/tmp}/results.txt
: > "$RES"
fails=0
now() { date +%s.%N; }
# check NAME CMD...: run CMD, print PASS/FAIL with its duration
check() {
    local name=$1; shift
    local s e rc
    s=$(now)
    "$@" > /tmp/check.out 2>&1; rc=$?
    e=$(now)
    if [ "$rc" = 0 ]; then
        awk -v n="$name" -v s="$s" -v e="$e" 'BEGIN{printf "PASS %-28s %8.2fs\n", n, e-s}' | tee -a "$RES"
    else
        fails=$((fails + 1))
        awk -v n="$name" -v r="$rc" -v s="$s" -v e="$e" 'BEGIN{printf "FAIL %-28s rc=%d %8.2fs\n", n, r, e-s}' | tee -a "$RES"
        tail -n 30 /tmp/check.out | sed 's/^/    /' | tee -a "$RES"
    fi
    return 0
}

mkdir -p "$MNT"
cmd=${HANFS_MOUNT_CMD:-"mount -t nfs -o vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,nolock 127.0.0.1:$EXPORT /mnt"}
# the daemon prints its command for a client on the same host: 127.0.0.1 -> $NFS_HOST, /mnt -> $MNT
cmd=$(printf '%s' "$cmd" | sed -E "s#[0-9.]+:(/[^ ]*) /mnt\$#$NFS_HOST:\\1 $MNT#")
echo "mount command: $cmd" | tee -a "$RES"
check mount bash -c "$cmd"
if ! mountpoint -q "$MNT"; then
    echo "FAIL not mounted; giving up" | tee -a "$RES"
    exit 1
fi
grep " $MNT " /proc/mounts | tee -a "$RES"
W=$MNT/kc-$$
mkdir -p "$W"

# 1. large file with O_DIRECT, read back and compared
big() {
    head -c $((BIG_MB * 1024 * 1024)) /dev/urandom > /tmp/big.src || return 1
    dd if=/tmp/big.src of="$W/big" bs=1M oflag=direct status=none || return 1
    local a b
    a=$(sha256sum < /tmp/big.src | cut -d' ' -f1)
    echo 3 > /proc/sys/vm/drop_caches
    b=$(dd if="$W/big" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)
    echo "src $a nfs $b"
    [ "$a" = "$b" ] && [ "$(stat -c %s "$W/big")" = $((BIG_MB * 1024 * 1024)) ]
}
check "dd-direct-${BIG_MB}MiB" big
rm -f /tmp/big.src

# 2. a few thousand small files: cp -a of a generated tree, verified with sha256sum -c
small() {
    # few processes: under TCG a process start costs more than the file it writes
    rm -rf /tmp/tree && mkdir -p /tmp/tree || return 1
    local d per=$(( (SMALL_FILES + 36) / 37 ))
    for d in $(seq 0 36); do
        mkdir -p /tmp/tree/d$d/sub || return 1
        head -c $(( per * 4000 - d * 37 )) /dev/urandom | split -a 3 -b 4000 - /tmp/tree/d$d/f || return 1
        mv /tmp/tree/d$d/faa* /tmp/tree/d$d/sub/ 2>/dev/null
    done
    : > /tmp/tree/empty
    ln -s d1/sub /tmp/tree/link
    chmod 0640 /tmp/tree/d2/faba || return 1
    touch -d '2001-02-03 04:05:06' /tmp/tree/d3/fabb || return 1
    local n
    n=$(find /tmp/tree -type f | wc -l)
    echo "$n files"
    (cd /tmp/tree && find . -type f -print0 | xargs -0 sha256sum > /tmp/tree.sha256) || return 1
    cp -a /tmp/tree "$W/tree" || return 1
    echo 3 > /proc/sys/vm/drop_caches
    (cd "$W/tree" && sha256sum -c --quiet /tmp/tree.sha256) || return 1
    [ "$(find "$W/tree" -type f | wc -l)" = "$n" ] || return 1
    [ "$(readlink "$W/tree/link")" = d1/sub ] || return 1
    # cp -a kept modes and times
    [ "$(stat -c %a "$W/tree/d2/faba")" = 640 ] || return 1
    [ "$(stat -c %Y "$W/tree/d3/fabb")" = "$(stat -c %Y /tmp/tree/d3/fabb)" ]
}
check "cp-a-${SMALL_FILES}-files" small

# 3. fio random writes with crc32c verification
check "fio-randwrite-verify" fio --name=hanfs --filename="$W/fio.dat" --size=${FIO_MB}M --rw=randwrite \
    --bs=16k --ioengine=psync --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --runtime=300 --group_reporting

# 4. git: a local repository with commits, cloned onto the mount, fsck'ed there
gitwork() {
    export HOME=/root GIT_AUTHOR_NAME=kc GIT_AUTHOR_EMAIL=kc@example.invalid GIT_COMMITTER_NAME=kc GIT_COMMITTER_EMAIL=kc@example.invalid
    rm -rf /tmp/repo && git init -q /tmp/repo || return 1
    local i
    for i in $(seq 1 20); do
        seq 1 $((i * 100)) > /tmp/repo/file$((i % 5)).txt
        git -C /tmp/repo add -A && git -C /tmp/repo commit -q -m "commit $i" || return 1
    done
    git clone -q /tmp/repo "$W/clone" || return 1
    git -C "$W/clone" fsck --full --strict || return 1
    [ "$(git -C "$W/clone" rev-parse HEAD)" = "$(git -C /tmp/repo rev-parse HEAD)" ] || return 1
    echo change >> "$W/clone/file1.txt"
    git -C "$W/clone" commit -q -am "on nfs" && git -C "$W/clone" gc -q && git -C "$W/clone" fsck --full
}
check "git-clone-fsck" gitwork

# 5. namespace operations from the shell
shellops() {
    cd "$W" || return 1
    echo hello > a || return 1
    mv a b && [ ! -e a ] && [ "$(cat b)" = hello ] || return 1
    ln b c && [ "$(stat -c %h b)" = 2 ] && [ "$(stat -c %i b)" = "$(stat -c %i c)" ] || return 1
    ln -s b d && [ "$(readlink d)" = b ] && [ "$(cat d)" = hello ] || return 1
    chmod 0604 b && [ "$(stat -c %a c)" = 604 ] || return 1
    truncate -s 3 b && [ "$(cat c)" = hel ] || return 1
    truncate -s 100000 b && [ "$(stat -c %s c)" = 100000 ] || return 1
    mkdir -p e/f && mv e g && [ -d g/f ] || return 1
    rm c && [ "$(stat -c %h b)" = 1 ] || return 1
    mkfifo p && [ -p p ] || return 1
    rmdir g/f g && rm b d p && [ ! -e b ]
}
check "rename-link-symlink-chmod-truncate" shellops
cd /

check "cleanup" rm -rf "$W"
check "umount" umount "$MNT"
echo "kernel workload: $fails failure(s)" | tee -a "$RES"
exit "$fails"
