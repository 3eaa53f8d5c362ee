#!/usr/bin/env bash
# The real agent CLIs the client tier (tests/clients) drives, pinned, from npm.
# Installed once into $FKLLM_CLIENTS_DIR (default ~/.cache/fkllm-clients); a second run
# with the same pins does nothing. Install scripts stay off for the whole tree; the one
# that matters is run by name below: Claude Code 2.x ships its program as a per-platform
# optional dependency, and its postinstall (install.cjs, no network) copies that native
# binary over bin/claude.exe, which until then is a shell stub that only prints an error.
set -euo pipefail
dir="${FKLLM_CLIENTS_DIR:-$HOME/.cache/fkllm-clients}"
pins=(
    "@anthropic-ai/claude-code@2.1.197"
    "@openai/codex@0.171.0"
    "@google/gemini-cli@0.61.0"
)
stamp="$dir/.pins"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] \
    && "$dir/node_modules/.bin/claude" --version >/dev/null 2>&1; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$dir" "${pins[@]}"
(cd "$dir" && node node_modules/@anthropic-ai/claude-code/install.cjs)
"$dir/node_modules/.bin/claude" --version >/dev/null
echo "${pins[*]}" > "$stamp"
