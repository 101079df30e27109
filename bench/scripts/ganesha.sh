#!/usr/bin/env bash
# Benchmark reference server (adapted from shared/kernel-client/ganesha-standin.sh so the bench
# does not depend on the shared harness): nfs-ganesha (VFS FSAL), installed if missing,
# exporting a directory, NFSv3 over TCP only, bound to 127.0.0.1, with a private rpcbind.
#
#   GANESHA_STATE=DIR bench/scripts/ganesha.sh start EXPORT_DIR   # prints NFS_PORT/MOUNT_PORT/EXPORT
#   GANESHA_STATE=DIR bench/scripts/ganesha.sh stop
#
# Env: GANESHA_NFS_PORT (default 32049), GANESHA_MNT_PORT (default 32048),
#      GANESHA_STATE (required; config, log, pid files live there).
set -euo pipefail
kc_log() { echo "[ganesha $(date +%H:%M:%S)] $*" >&2; }
kc_die() { kc_log "ERROR: $*"; exit 1; }
kc_need_root() { [ "$(id -u)" = 0 ] || kc_die "run as root"; }

NFS_PORT=${GANESHA_NFS_PORT:-32049}
MNT_PORT=${GANESHA_MNT_PORT:-32048}
STATE=${GANESHA_STATE:?set GANESHA_STATE to a state directory}
CONF=$STATE/ganesha.conf
PIDF=$STATE/ganesha.pid
LOGF=$STATE/ganesha.log

start() {
    local dir=${1:-$STATE/export}
    kc_need_root
    if ! command -v ganesha.nfsd >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nfs-ganesha nfs-ganesha-vfs >/dev/null
    fi
    mkdir -p "$STATE" "$dir" "$STATE/recov"
    dir=$(cd "$dir" && pwd)
    if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
        kc_die "already running (pid $(cat "$PIDF"))"
    fi
    cat > "$CONF" <<EOF
NFS_CORE_PARAM {
    Protocols = 3;
    NFS_Port = $NFS_PORT;
    MNT_Port = $MNT_PORT;
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    mount_path_pseudo = false;
}
NFSV4 {
    Graceless = true;
}
NFS_KRB5 {
    Active_krb5 = false;
}
EXPORT {
    Export_Id = 1;
    Path = "$dir";
    Pseudo = "/export";
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG {
    Default_Log_Level = EVENT;
}
EOF
    : > "$LOGF"
    rm -f "$STATE/rpcbind.pid"
    # ganesha 4.3 exits at start-up ("__Register_program :DISP :MAJ :Cannot
    # register NFS V3 on TCP") when no rpcbind answers. So it gets a private
    # one: a mount namespace with its own tmpfs /run (hence its own
    # /run/rpcbind.sock), and rpcbind itself in an empty network namespace,
    # so nothing listens on the host's port 111 and another rpcbind on the
    # machine is neither needed nor disturbed. ganesha stays in the host's
    # network namespace, listening on 127.0.0.1 only.
    setsid unshare --mount --propagation private -- /bin/sh -c '
        mount -t tmpfs -o mode=755 kc-run /run || exit 1
        mkdir -p /run/rpcbind /run/ganesha && chown _rpc /run/rpcbind 2>/dev/null
        unshare --net -- rpcbind -f </dev/null >>"$2" 2>&1 &
        echo $! > "$1/rpcbind.pid"
        i=0; while [ ! -S /run/rpcbind.sock ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        shift 2
        exec "$@"' kc-ganesha "$STATE" "$LOGF" \
        ganesha.nfsd -F -f "$CONF" -L "$LOGF" -p /run/ganesha/ganesha.pid </dev/null >>"$LOGF" 2>&1 &
    local pid=$!
    echo "$pid" > "$PIDF"
    local i
    for i in $(seq 1 50); do
        if ss -ltn "sport = :$NFS_PORT" | grep -q LISTEN && ss -ltn "sport = :$MNT_PORT" | grep -q LISTEN; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$LOGF" >&2; stop; kc_die "ganesha.nfsd exited"; }
        sleep 0.2
    done
    ss -ltn "sport = :$NFS_PORT" | grep -q LISTEN || { tail -20 "$LOGF" >&2; kc_die "ganesha not listening on $NFS_PORT"; }
    kc_log "ganesha.nfsd pid $pid, export $dir, log $LOGF"
    echo "NFS_PORT=$NFS_PORT MOUNT_PORT=$MNT_PORT EXPORT=$dir"
}

stop() {
    local f pid
    for f in "$PIDF" "$STATE/rpcbind.pid"; do   # ganesha first, then its rpcbind
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            kc_log "stopped $(basename "$f" .pid) pid $pid"
        fi
        rm -f "$f"
    done
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 start [EXPORT_DIR] | stop" >&2; exit 2 ;;
esac
