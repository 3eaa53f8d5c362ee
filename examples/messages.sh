#!/bin/sh
# /v1/messages with curl: a message, a stream, and a token count.
# Against `make run` (the demo on the mock provider) it needs nothing else:
#   sh examples/messages.sh
# Elsewhere: FKLLM_URL=https://proxy.example FKLLM_KEY=sk-... MODEL=claude-sonnet-5 sh examples/messages.sh
set -eu
URL="${FKLLM_URL:-http://127.0.0.1:4000}"
if [ -z "${FKLLM_KEY:-}" ] && [ -r .run/env ]; then
  FKLLM_KEY="$(sed -n 's/^APP_AUTH__MASTER_KEY=//p' .run/env)"
fi
KEY="${FKLLM_KEY:?set FKLLM_KEY to a proxy key}"
MODEL="${MODEL:-claude-sonnet-5}"

echo "== a message"
curl -sS "$URL/v1/messages" \
  -H "x-api-key: $KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{
    "model": "'"$MODEL"'",
    "max_tokens": 256,
    "system": "Answer in one sentence.",
    "messages": [{"role": "user", "content": "What is a reverse proxy?"}]
  }'
echo

echo "== a stream (Anthropic events)"
curl -sSN "$URL/v1/messages" \
  -H "Authorization: Bearer $KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{
    "model": "'"$MODEL"'",
    "max_tokens": 256,
    "stream": true,
    "messages": [{"role": "user", "content": "Count to five."}]
  }'

echo "== count tokens"
curl -sS "$URL/v1/messages/count_tokens" \
  -H "x-api-key: $KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{"model": "'"$MODEL"'", "messages": [{"role": "user", "content": "How many tokens is this?"}]}'
echo
