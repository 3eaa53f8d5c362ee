#!/usr/bin/env bash
# Install what the benchmark needs; safe to run again (each step is skipped when done).
#
#   - nginx-light, its echo module, wrk and redis-server, from Debian (apt-get), when missing;
#   - bench/.cache/venv: matplotlib for the chart, py-spy and pyinstrument for profiling;
#   - bench/.cache/litellm-venv: LiteLLM's proxy, in its own throwaway virtualenv;
#   - bench/.cache/portkey: Portkey's gateway from npm, install scripts disabled.
#
# A peer that fails to install is reported and left out; the run then says it was
# skipped. The peers are pinned to known releases (LiteLLM's 1.82.7 and 1.82.8 were
# malicious uploads; 1.82.6 predates them); override with LITELLM_SPEC / PORTKEY_SPEC.
set -uo pipefail
cd "$(dirname "$0")"
CACHE=.cache
PYTHON=${PYTHON:-python3}
LITELLM_SPEC=${LITELLM_SPEC:-litellm[proxy]==1.82.6}
PORTKEY_SPEC=${PORTKEY_SPEC:-@portkey-ai/gateway@1.15.2}
mkdir -p "$CACHE"

say() { printf '[bench-setup] %s\n' "$*"; }

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need_apt+=(libnginx-mod-http-echo)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # the fkllm-redis target
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing ${need_apt[*]}: run 'sudo apt-get install -y ${need_apt[*]}'"
        exit 1
    fi
    say "installing ${need_apt[*]} from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" \
        || { say "apt-get failed"; exit 1; }
fi

if [ ! -e "$CACHE/venv/.installed" ]; then
    say "bench virtualenv (matplotlib, py-spy, pyinstrument, PyJWT)"
    "$PYTHON" -m venv "$CACHE/venv" \
        && "$CACHE/venv/bin/pip" install -q matplotlib py-spy pyinstrument "pyjwt[crypto]" \
        && touch "$CACHE/venv/.installed" \
        || say "bench virtualenv failed: no chart and no profiler (the run still works)"
elif ! "$CACHE/venv/bin/python" -c "import jwt, cryptography" 2>/dev/null; then
    # An older bench virtualenv: the fkllm-jwt target's local issuer signs with PyJWT.
    say "PyJWT into the bench virtualenv"
    "$CACHE/venv/bin/pip" install -q "pyjwt[crypto]" || say "PyJWT failed: fkllm-jwt is skipped"
fi

if [ ! -e "$CACHE/litellm-venv/.installed" ]; then
    say "LiteLLM ($LITELLM_SPEC) in $CACHE/litellm-venv"
    "$PYTHON" -m venv "$CACHE/litellm-venv" \
        && "$CACHE/litellm-venv/bin/pip" install -q "$LITELLM_SPEC" >"$CACHE/litellm-install.log" 2>&1 \
        && touch "$CACHE/litellm-venv/.installed" \
        || say "LiteLLM did not install (see $CACHE/litellm-install.log): it will be skipped"
fi

if [ ! -e "$CACHE/portkey/.installed" ]; then
    if command -v npm >/dev/null 2>&1; then
        say "Portkey gateway ($PORTKEY_SPEC) in $CACHE/portkey"
        mkdir -p "$CACHE/portkey"
        [ -e "$CACHE/portkey/package.json" ] || echo '{"private": true}' >"$CACHE/portkey/package.json"
        (cd "$CACHE/portkey" && npm install --ignore-scripts --no-audit --no-fund "$PORTKEY_SPEC") \
            >"$CACHE/portkey-install.log" 2>&1 \
            && touch "$CACHE/portkey/.installed" \
            || say "Portkey did not install (see $CACHE/portkey-install.log): it will be skipped"
    else
        say "npm is not installed: Portkey will be skipped (apt-get install nodejs npm)"
    fi
fi
# Portkey 1.15.2 on Node 20 answers every streamed chat completion with a 500
# ("TypeError: immutable", Portkey-AI/gateway#1389 and #1550): @hono/node-server's
# lightweight Response keeps the upstream fetch's immutable Headers when it is built
# from another Response, and the gateway then appends its own headers to them. Copying
# the headers in that one case makes streams work; nothing else changes.
HONO="$CACHE/portkey/node_modules/@hono/node-server/dist"
if [ -d "$HONO" ] && ! grep -q 'init instanceof GlobalResponse ?' "$HONO/index.mjs" 2>/dev/null; then
    say "applying the streaming compatibility fix to @hono/node-server (see bench/README.md)"
    sed -i 's/headers || init?.headers\]/headers || (init instanceof GlobalResponse ? new Headers(init.headers) : init?.headers)]/' \
        "$HONO"/*.js "$HONO"/*.mjs
fi
say "ready"
