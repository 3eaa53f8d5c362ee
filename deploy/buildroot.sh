#!/bin/sh
# The build root that makes dist/fkllmproxy run on glibc 2.31 (Debian 11, Ubuntu 20.04).
#
#   sh deploy/buildroot.sh create ROOT           debootstrap + CPython, once (ROOT/.complete)
#   sh deploy/buildroot.sh run ROOT DIR CMD...   CMD inside ROOT, DIR bind-mounted at DIR
#
# A program only runs where the C library is at least as new as the one it was linked
# against, and PyInstaller copies CPython, its extension modules and the shared libraries
# they use (libssl, libffi, libstdc++, ...) from the machine that freezes. So `make dist`
# freezes inside a Debian 11 (bullseye, glibc 2.31) root made here, with a CPython 3.11
# compiled in it:
#   - the root: `debootstrap --variant=minbase bullseye`, then bullseye's compiler and the
#     -dev packages CPython's modules link against (libffi, zlib, bz2, xz, SQLite, expat,
#     uuid), from this machine's Debian mirrors;
#   - OpenSSL: not bullseye's 1.1.1 (past upstream support, and past Debian 11's LTS), but
#     Debian 12's openssl source package (3.0, what the Debian 12 build carried, with its
#     security updates) at the version pinned below, all of Debian's patches applied, only
#     the libraries built; in ROOT/opt/openssl3, its configuration directory /usr/lib/ssl
#     as on Debian;
#   - CPython: Debian 12's python3.11 source package at the version pinned below (upstream
#     3.11.2 plus the fixes Debian's security team backported, CVEs up to 2026), fetched
#     with `apt-get source` (Debian's signed index checks it), built as upstream builds it:
#     Debian's own packaging patches (install layout, multiarch, ...) are left out, every
#     other patch of its series is applied. --enable-shared (PyInstaller needs libpython),
#     no PGO/LTO, like the pyenv build it replaces, linked to that OpenSSL. Installed in
#     ROOT/opt/python3.11; ROOT/opt/python3.11/DEBIAN-SOURCE names both source packages
#     (deploy/sbom.py reads it).
# Then `make dist` runs in the root (the Makefile does it); wheels come from requirements.lock
# as before, and pip picks their manylinux builds that glibc 2.31 can load.
# Everything runs in a private mount namespace (unshare), so nothing stays mounted when it
# ends, however it ends. Needs root, debootstrap and unshare (Debian: debootstrap,
# util-linux); takes about 7 minutes on 2 cores, once per ROOT.
#
# The pinned sources: Debian keeps only the current revision of a package in its archive, so
# when bookworm's next point release replaces one, `apt-get source` fails here with "Can not
# find version"; `apt-cache showsrc python3.11` (or openssl) in the root names the new one:
# put it below (or pass PYTHON_SOURCE=python3.11=VERSION, OPENSSL_SOURCE=openssl=VERSION);
# the next `make dist` rebuilds the root.
set -eu

PYTHON_SOURCE=${PYTHON_SOURCE:-python3.11=3.11.2-6+deb12u8}
OPENSSL_SOURCE=${OPENSSL_SOURCE:-openssl=3.0.20-1~deb12u2}
SUITE=bullseye
PREFIX=/opt/python3.11
OPENSSL=/opt/openssl3
# Debian's own patches of the python3.11 source package that only fit its packaging (install
# schemes, multiarch names, split packages, its docs build); the rest are upstream fixes.
DEBIAN_ONLY_PATCHES="deb-setup.diff deb-locations.diff distutils-install-layout.diff
locale-module.diff distutils-link.diff distutils-sysconfig.diff sysconfig-debian-schemes.diff
tkinter-import.diff gdbm-import.diff link-opt.diff setup-modules.diff profiled-build.diff
langpack-gettext.diff disable-sem-check.diff lib-argparse.diff ctypes-arm.diff multiarch.diff
lib2to3-no-pickled-grammar.diff ext-no-libpython-link.diff test-no-random-order.diff
multiarch-extname.diff tempfile-minimal.diff disable-some-tests.diff ensurepip-disabled.diff
mangle-fstack-protector.diff reproducible-buildinfo.diff pydoc-use-pager.diff
local-doc-references.diff doc-build-texinfo.diff argparse-no-shutil.diff sysconfigdata-name.diff
hurd_kfreebsd_thread_native_id.diff sphinx3.diff destshared-location.diff ntpath-import.diff"
BUILD_DEPENDS="build-essential pkg-config xz-utils zlib1g-dev libffi-dev libbz2-dev liblzma-dev
libsqlite3-dev libexpat1-dev uuid-dev perl"

# ROOT CMD...: CMD chrooted into ROOT with /proc and /dev, in a mount namespace of its own.
# BIND=DIR also mounts DIR at the same path inside.
inroot() {
    into=$1
    shift
    unshare --mount --propagation private sh -eu -c '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        # The network setup of this machine: its resolver and CA certificates (pip checks the
        # package index with them, PIP_CERT included).
        for file in /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
            if [ -f "$file" ]; then
                mkdir -p "$(dirname "$root$file")"
                [ -f "$root$file" ] || : >"$root$file"
                mount --bind -o ro "$file" "$root$file"
            fi
        done
        if [ -n "${BIND:-}" ]; then
            mkdir -p "$root$BIND"
            mount --bind "$BIND" "$root$BIND"
        fi
        exec chroot "$root" "$@"' inroot "$into" "$@"
}

# The URI of this machine's Debian apt source whose suites match $1 (bookworm, -security).
apt_uri() {
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] && awk -v want="$1" 'BEGIN { RS = "" } {
            uri = ""; suites = ""
            n = split($0, line, "\n")
            for (i = 1; i <= n; i++) {
                if (line[i] ~ /^URIs:/) { split(line[i], f, " "); uri = f[2] }
                if (line[i] ~ /^Suites:/) suites = line[i]
            }
            if (uri != "" && suites ~ want) { print uri; exit }
        }' "$file"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk -v want="$1" '$1 == "deb" && $3 ~ want { print $2; exit }'
}

create() {
    root=$1
    mkdir -p "$(dirname "$root")"
    # One maker at a time (two worktrees' make dist); the others wait, then find it made.
    exec 9>"$root.lock"
    flock 9
    stamp="$PYTHON_SOURCE $OPENSSL_SOURCE $(sha256sum <"$0" | cut -c1-16)"
    if [ -f "$root/.complete" ] && [ "$(cat "$root/.complete")" = "$stamp" ]; then
        return 0
    fi
    for tool in debootstrap unshare chroot; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "buildroot: $tool is missing (Debian packages: debootstrap, util-linux)" >&2
            exit 1
        }
    done
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    mirror=${DEBIAN_MIRROR:-$(apt_uri "(^|[ :])$codename( |\$)" | head -n 1)}
    security=${DEBIAN_SECURITY_MIRROR:-$(apt_uri "$codename-security" | head -n 1)}
    if [ -z "$mirror" ] || [ -z "$security" ]; then
        echo "buildroot: no Debian mirror in this machine's apt sources;" \
            "set DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR" >&2
        exit 1
    fi
    rm -rf "$root"
    work="$root.tmp"
    rm -rf "$work"
    echo "buildroot: debootstrap $SUITE into $root"
    debootstrap --variant=minbase "$SUITE" "$work" "$mirror" >"$work.log" 2>&1 ||
        { tail -n 20 "$work.log" >&2; exit 1; }
    rm -f "$work.log"
    # bookworm's sources: CPython 3.11 is not in bullseye.
    cat >"$work/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
deb-src $mirror bookworm main
EOF
    echo "buildroot: bullseye's compiler and libraries"
    inroot "$work" apt-get update -qq
    inroot "$work" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $BUILD_DEPENDS >/dev/null
    jobs=$(nproc)
    [ "$jobs" -le 2 ] || jobs=2
    for source in "$OPENSSL_SOURCE" "$PYTHON_SOURCE"; do
        inroot "$work" sh -euc 'mkdir -p "/usr/src/${1%%=*}" && cd "/usr/src/${1%%=*}" &&
            apt-get source -qq --download-only "$1" >/dev/null 2>&1 ||
            { apt-get source --download-only "$1" 2>&1 | grep -E "^E:" >&2; exit 1; }' \
            sh "$source"
    done
    echo "buildroot: OpenSSL from Debian's source package $OPENSSL_SOURCE"
    inroot "$work" sh -euc '
        cd /usr/src/openssl
        tar xf openssl_*.orig.tar.gz && mv openssl-3.* source
        tar xf openssl_*.debian.tar.* -C source
        cd source
        sed -e "s/#.*//" -e "/^ *\$/d" debian/patches/series | while read -r patch; do
            patch -s -p1 <"debian/patches/$patch"
        done
        ./Configure linux-x86_64 shared no-tests --prefix="$1" --libdir=lib \
            --openssldir=/usr/lib/ssl "-Wl,-rpath,$1/lib" >/dev/null
        nice -n 10 make -s -j"$2" build_libs >/dev/null 2>build.log ||
            { tail -n 30 build.log >&2; exit 1; }
        make -s install_dev >/dev/null 2>>build.log || { tail -n 30 build.log >&2; exit 1; }
        rm -f "$1"/lib/*.a' sh "$OPENSSL" "$jobs"
    echo "buildroot: CPython from Debian's source package $PYTHON_SOURCE"
    inroot "$work" sh -euc '
        cd /usr/src/python3.11
        tar xf python3.11_*.orig.tar.* && mv Python-3.11.* source
        tar xf python3.11_*.debian.tar.* -C source
        cd source
        sed -e "s/#.*//" -e "/^ *\$/d" debian/patches/series | while read -r patch; do
            case " $(echo $1) " in *" $patch "*) continue ;; esac
            patch -s -p1 <"debian/patches/$patch"
        done
        # The CVE-2026-4224 fix has pyexpat.c include an internal header, which Debian builds
        # in (Py_BUILD_CORE_BUILTIN); as the shared module upstream builds, it needs the same
        # guard the other such modules carry (_ctypes.c, ...).
        if grep -q "^#include \"pycore_" Modules/pyexpat.c && ! grep -q Py_BUILD_CORE Modules/pyexpat.c
        then
            sed -i "1i #ifndef Py_BUILD_CORE_BUILTIN\\n#  define Py_BUILD_CORE_MODULE 1\\n#endif" \
                Modules/pyexpat.c
        fi' sh "$DEBIAN_ONLY_PATCHES"
    inroot "$work" sh -euc '
        cd /usr/src/python3.11/source
        ./configure -q --prefix="$1" --enable-shared --with-system-expat --with-ensurepip=no \
            --with-openssl="$3" --with-openssl-rpath=auto LDFLAGS="-Wl,-rpath,$1/lib" >/dev/null
        nice -n 10 make -s -j"$2" >/dev/null 2>build.log || { tail -n 30 build.log >&2; exit 1; }
        make -s altinstall >/dev/null 2>>build.log || { tail -n 30 build.log >&2; exit 1; }
        "$1/bin/python3.11" -c "import ctypes, sqlite3, lzma, bz2, zlib, uuid, pyexpat, decimal
import ssl; assert ssl.OPENSSL_VERSION.startswith(\"OpenSSL 3.0.\"), ssl.OPENSSL_VERSION"
        ln -sf python3.11 "$1/bin/python3"' sh "$PREFIX" "$jobs" "$OPENSSL"
    # What deploy/sbom.py names: the CPython the program carries and the OpenSSL beside it.
    printf '%s\n' "$PYTHON_SOURCE" "$OPENSSL_SOURCE" | sed 's/=/ /' >"$work$PREFIX/DEBIAN-SOURCE"
    rm -rf "$work/usr/src/python3.11/source" "$work/usr/src/openssl/source" \
        "$work/var/cache/apt/archives"/*.deb
    echo "$stamp" >"$work/.complete"
    mv "$work" "$root"
}

case "${1:-}" in
    create)
        [ $# -eq 2 ] || { echo "usage: $0 create ROOT" >&2; exit 2; }
        create "$2"
        ;;
    run)
        [ $# -ge 4 ] || { echo "usage: $0 run ROOT DIR CMD..." >&2; exit 2; }
        root=$(cd "$2" && pwd)
        BIND=$(cd "$3" && pwd)
        export BIND
        # Local wheel directories of this machine are not inside the root (pip warns about
        # each); the index and the locks' hashes are what count.
        unset PIP_FIND_LINKS
        shift 3
        inroot "$root" sh -euc 'cd "$BIND" && exec "$@"' sh "$@"
        ;;
    *)
        echo "usage: $0 create ROOT | run ROOT DIR CMD..." >&2
        exit 2
        ;;
esac
