#!/bin/sh
# Assemble the container image's root file system: the program, glibc, nothing else.
#
#   sh deploy/rootfs.sh DEST [BINARY]      (BINARY defaults to dist/fkllmproxy)
#
# `make image` runs it into build/image/rootfs and builds deploy/Containerfile FROM scratch
# on top; the tests run the same tree in a chroot. What goes in:
#   /usr/local/bin/fkllmproxy        the single-file program (`make dist`)
#   /opt/fkllmproxy/cache/...        that program already unpacked, so the root file system
#                                    can be read-only (FKLLMPROXY_CACHE points here)
#   /lib/x86_64-linux-gnu, /lib64    the C library the program does not carry (libc, libm,
#                                    libpthread, libdl, librt, libutil, libresolv, NSS, ld.so)
#   /etc/ssl/certs/ca-certificates.crt  the CAs for TLS to providers (SSL_CERT_FILE)
#   /etc/passwd, group, nsswitch.conf, hosts   user 65532 "fkllmproxy" (the image's USER)
#   /etc/fkllmproxy/config.toml      listen on 0.0.0.0:4000; a mounted ConfigMap replaces it
#   /tmp, /var/lib/fkllmproxy        mount points for writable volumes
# The C library is copied from the machine assembling the tree, or from the root file system
# LIBC_ROOT names (the tests take glibc 2.31 from the Debian 11 build root that way, to run
# the program on the oldest C library it supports).
set -eu
mkdir -p "$1"
dest=$(cd "$1" && pwd)
binary=${2:-dist/fkllmproxy}
here=$(cd "$(dirname "$0")" && pwd)
uid=65532

[ -f "$binary" ] || { echo "rootfs: $binary not found; build it with 'make dist'" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest/usr/local/bin" "$dest/lib/x86_64-linux-gnu" "$dest/lib64" "$dest/etc/ssl/certs" \
    "$dest/etc/fkllmproxy" "$dest/opt/fkllmproxy/cache" "$dest/var/lib/fkllmproxy" "$dest/proc" \
    "$dest/dev" "$dest/tmp"
chmod 1777 "$dest/tmp"
install -m 0755 "$binary" "$dest/usr/local/bin/fkllmproxy"

libdir=${LIBC_ROOT:-}/lib/x86_64-linux-gnu
for lib in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 \
        libresolv.so.2 libnss_files.so.2 libnss_dns.so.2 ld-linux-x86-64.so.2; do
    if [ -e "$libdir/$lib" ]; then
        cp -L "$libdir/$lib" "$dest/lib/x86_64-linux-gnu/$lib"
    fi
done
cp -L "$libdir/ld-linux-x86-64.so.2" "$dest/lib64/ld-linux-x86-64.so.2"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/ca-certificates.crt"
else
    echo "rootfs: warning: no /etc/ssl/certs/ca-certificates.crt (Debian package: ca-certificates)" >&2
fi

cat > "$dest/etc/passwd" <<PASSWD
root:x:0:0:root:/nonexistent:/sbin/nologin
fkllmproxy:x:$uid:$uid:fkllmproxy:/var/lib/fkllmproxy:/sbin/nologin
PASSWD
cat > "$dest/etc/group" <<GROUP
root:x:0:
fkllmproxy:x:$uid:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dest/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$dest/etc/hosts"
install -m 0644 "$here/container-config.toml" "$dest/etc/fkllmproxy/config.toml"

# Unpack once now, with the program itself: the running container never writes there.
FKLLMPROXY_CACHE="$dest/opt/fkllmproxy/cache" "$binary" --version >/dev/null
chmod -R a+rX,go-w "$dest/opt/fkllmproxy"
# The state directory stays root's and read-only in the image (COPY makes it root's
# anyway): mount a volume there when [state] or [usage] write SQLite files.
chmod 0755 "$dest/var/lib/fkllmproxy"
echo "rootfs: $dest ($(du -sh "$dest" | cut -f1))"
