#!/bin/sh
# The unit's file-system view, without systemd: run inside `unshare --mount`.
#
#   sandbox_fs.sh WRITABLE_DIR -- COMMAND ARGS...
#
# ProtectSystem=strict: every mount read-only except the API file systems (/dev, /proc,
# /sys) and WRITABLE_DIR (standing in for StateDirectory/CacheDirectory).
# ProtectHome=yes: /home, /root and /run/user empty and inaccessible.
# ProtectProc=invisible + ProcSubset=pid: a /proc with only process directories.
set -eu
writable=$1
shift 2

awk '{ print $5 }' /proc/self/mountinfo | while read -r point; do
    case "$point" in
        /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) ;;
        *) mount -o remount,bind,ro "$point" 2>/dev/null || true ;;
    esac
done
mount --bind "$writable" "$writable"
mount -o remount,bind,rw "$writable"
for hidden in /home /root /run/user; do
    if [ -d "$hidden" ]; then
        mount -t tmpfs -o ro,mode=000 tmpfs "$hidden"
    fi
done
mount -t proc -o subset=pid,hidepid=invisible proc /proc
exec "$@"
