#!/usr/bin/env bash
# The real agent CLIs the client tier (tests/clients) drives, pinned, from npm.
# Installed once into $FKLLM_CLIENTS_DIR (default ~/.cache/fkllm-clients); a second run
# with the same pins does nothing. Install scripts stay off: none of these needs one to
# run (each ships its program in the package).
set -euo pipefail
dir="${FKLLM_CLIENTS_DIR:-$HOME/.cache/fkllm-clients}"
pins=(
    "@anthropic-ai/claude-code@2.1.197"
    "@openai/codex@0.171.0"
    "@google/gemini-cli@0.61.0"
)
stamp="$dir/.pins"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$dir" "${pins[@]}"
echo "${pins[*]}" > "$stamp"
