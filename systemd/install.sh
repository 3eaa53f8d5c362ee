#!/bin/sh
# Install fkllmproxy as a systemd service: `sudo make install` runs this.
#
# Installs the single-file program, the unit, the service user, an env file with a new
# master key and a commented config. Existing env and config files are never touched,
# so running it again (an upgrade) keeps the operator's settings and secrets; the binary
# it replaces is kept as fkllmproxy.backup for the runbook's rollback.
#
# Every location can be overridden; DESTDIR installs into a staging root (packaging,
# tests) and then skips what only makes sense on the live system (users, ownership).
#   DESTDIR=   PREFIX=/usr/local   SYSCONFDIR=/etc   UNITDIR=/etc/systemd/system
#   SYSUSERSDIR=/etc/sysusers.d   BINARY=dist/fkllmproxy
set -eu

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-/etc/sysusers.d}
BINARY=${BINARY:-dist/fkllmproxy}
SERVICE_USER=fkllmproxy

source_dir=$(cd "$(dirname "$0")/.." && pwd)
bin_path="$PREFIX/bin/fkllmproxy"
conf_dir="$SYSCONFDIR/fkllmproxy"
env_file="$conf_dir/env"
config_file="$conf_dir/config.toml"
doc_dir="$PREFIX/share/doc/fkllmproxy"
live=$([ -z "$DESTDIR" ] && echo yes || echo no)

say() { printf '%s\n' "$*"; }

if [ ! -f "$BINARY" ]; then
    say "install: $BINARY not found; build it first with 'make dist'" >&2
    exit 1
fi

# 0. A build comes with SHA256SUMS (make dist): refuse a program that does not match it.
sums="$(dirname "$BINARY")/SHA256SUMS"
if [ -f "$sums" ]; then
    expected=$(awk -v name="$(basename "$BINARY")" '$2 == name || $2 == "*" name { print $1 }' "$sums")
    actual=$(sha256sum "$BINARY" | cut -d' ' -f1)
    if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
        say "install: $BINARY does not match $sums; not installing it (rebuild or copy it again)" >&2
        exit 1
    fi
    say "checked $BINARY against $sums"
fi

# 1. The program. An older, different one is kept for rollback.
install -d -m 0755 "$DESTDIR$PREFIX/bin"
if [ -f "$DESTDIR$bin_path" ] && ! cmp -s "$BINARY" "$DESTDIR$bin_path"; then
    cp -p "$DESTDIR$bin_path" "$DESTDIR$bin_path.backup"
    say "kept the previous program as $bin_path.backup"
fi
install -m 0755 "$BINARY" "$DESTDIR$bin_path.new"
mv -f "$DESTDIR$bin_path.new" "$DESTDIR$bin_path"
say "installed $bin_path"
# `fkllm` is the same program (the contract's name for the CLI); never clobber another one.
fkllm_link="$DESTDIR$PREFIX/bin/fkllm"
if [ ! -e "$fkllm_link" ] || [ -L "$fkllm_link" ]; then
    ln -sfn fkllmproxy "$fkllm_link"
else
    say "left $PREFIX/bin/fkllm alone (not ours); use fkllmproxy instead"
fi

# 2. The unit, pointed at where this install put things.
install -d -m 0755 "$DESTDIR$UNITDIR"
sed -e "s#/usr/local/bin/fkllmproxy#$bin_path#g" \
    -e "s#/etc/fkllmproxy/#$conf_dir/#g" \
    -e "s#/usr/local/share/doc/fkllmproxy/#$doc_dir/#g" \
    "$source_dir/systemd/fkllmproxy.service" > "$DESTDIR$UNITDIR/fkllmproxy.service.new"
chmod 0644 "$DESTDIR$UNITDIR/fkllmproxy.service.new"
mv -f "$DESTDIR$UNITDIR/fkllmproxy.service.new" "$DESTDIR$UNITDIR/fkllmproxy.service"
say "installed $UNITDIR/fkllmproxy.service"

# 3. The service user (declared for systemd-sysusers, created now on a live system).
install -d -m 0755 "$DESTDIR$SYSUSERSDIR"
install -m 0644 "$source_dir/systemd/fkllmproxy.sysusers" "$DESTDIR$SYSUSERSDIR/fkllmproxy.conf"
if [ "$live" = yes ] && ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$SYSUSERSDIR/fkllmproxy.conf"
    else
        useradd --system --user-group --no-create-home --home-dir /var/lib/fkllmproxy \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    say "created the system user $SERVICE_USER"
fi

# 4. The env file: secrets, readable by the service user only. Never overwritten.
install -d -m 0755 "$DESTDIR$conf_dir"
if [ -e "$DESTDIR$env_file" ]; then
    say "kept the existing $env_file"
    if [ "$live" = yes ] && [ "$(stat -c %U "$env_file")" != "$SERVICE_USER" ]; then
        say "warning: $env_file is not owned by $SERVICE_USER, so the service cannot re-read" \
            "it on reload; fix: sudo chown $SERVICE_USER: $env_file && sudo chmod 600 $env_file" >&2
    fi
else
    master_key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    (
        umask 077
        cat > "$DESTDIR$env_file.new" <<EOF
# fkllmproxy environment: secrets and APP_* settings (KEY=value, # comments).
# Read by systemd when the service starts and by the daemon on every reload:
#   sudo systemctl reload fkllmproxy
# Keep it mode 0600, owned by the service user ($SERVICE_USER).

# Clients authenticate with this key (Authorization: Bearer ...). Rotate it with
#   sudo fkllmproxy rotate-key --env-file $env_file && sudo systemctl reload fkllmproxy
APP_AUTH__MASTER_KEY=$master_key

# Provider credentials: each one set enables its provider with default model names
# (when config.toml has no [[providers]]). Uncomment at least one.
# GOOGLE_API_KEY=
# GOOGLE_APPLICATION_CREDENTIALS=/etc/fkllmproxy/service-account.json
# OPENAI_API_KEY=
# ANTHROPIC_API_KEY=
# GROQ_API_KEY=
# OPENROUTER_API_KEY=
# AZURE_OPENAI_API_KEY=
# AZURE_OPENAI_ENDPOINT=https://NAME.openai.azure.com

# Any config key as APP_<SECTION>__<KEY>, for example:
# APP_SERVER__HOST=0.0.0.0
# APP_SERVER__PORT=4000
# APP_RATE_LIMIT__CAPACITY=1000
# APP_RATE_LIMIT__REFILL_PER_SECOND=100
# APP_CIRCUIT_BREAKER__FAILURE_THRESHOLD=10
# APP_CIRCUIT_BREAKER__TIMEOUT_SECS=60
EOF
    )
    if [ "$live" = yes ]; then
        chown "$SERVICE_USER:$SERVICE_USER" "$env_file.new"
    fi
    mv "$DESTDIR$env_file.new" "$DESTDIR$env_file"
    say "created $env_file (mode 0600) with a new master key"
fi

# 5. The config: the documented example with every setting commented out (defaults apply).
if [ -e "$DESTDIR$config_file" ]; then
    say "kept the existing $config_file"
else
    {
        say "# Installed by 'make install': every setting below is commented out, so the"
        say "# built-in defaults apply. Uncomment and edit what you need, then check it with"
        say "#   sudo fkllmproxy check-config"
        say "# and apply it with: sudo systemctl reload fkllmproxy"
        say "#"
        sed -e '/^[[:space:]]*$/b' -e '/^[[:space:]]*#/b' -e 's/^/# /' "$source_dir/config.example.toml"
    } > "$DESTDIR$config_file.new"
    chmod 0644 "$DESTDIR$config_file.new"
    mv "$DESTDIR$config_file.new" "$DESTDIR$config_file"
    say "created $config_file (all settings commented out)"
fi

# 6. The operations guide the unit's Documentation= points at.
install -d -m 0755 "$DESTDIR$doc_dir"
install -m 0644 "$source_dir/docs/operations.md" "$DESTDIR$doc_dir/operations.md"

cat <<EOF

Next steps:
  sudoedit $env_file   # set a provider key, e.g. GOOGLE_API_KEY=...
  sudo $bin_path check-config   # validate: exit 0 when valid
  sudo systemctl daemon-reload
  sudo systemctl enable --now fkllmproxy   # upgrading a running service: sudo systemctl restart fkllmproxy
  systemctl status fkllmproxy
  curl http://localhost:4000/health
  sudo journalctl -u fkllmproxy -f | jq
EOF
