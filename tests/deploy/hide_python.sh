#!/bin/sh
# Run a command on this machine with every Python hidden: run inside `unshare --mount`.
#
#   hide_python.sh -- COMMAND ARGS...
#
# Each interpreter, standard library and libpython the system, /usr/local or pyenv
# provide is covered (a file by /dev/null, a directory by an empty unreadable tmpfs) in
# this mount namespace only; the test checks afterwards that no python3 runs.
set -eu
shift
for path in /usr/bin/python* /usr/local/bin/python* /usr/sbin/python* \
        /usr/lib/python3* /usr/local/lib/python3* /usr/lib/x86_64-linux-gnu/libpython* \
        /usr/local/lib/libpython* /root/.pyenv /opt/python* /opt/pyenv; do
    if [ -d "$path" ]; then
        mount -t tmpfs -o ro,mode=000 tmpfs "$path"
    elif [ -e "$path" ]; then
        mount --bind /dev/null "$path"
    fi
done
exec "$@"
