#!/usr/bin/env bash
# Sets everything up (packages, build) and opens the chat on the default demo model.
# Extra arguments go to `fastdllm`, e.g. scripts/run.sh chat --mode compare.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "fastdllm: checking packages and building (first run takes a few minutes)..." >&2
./scripts/build.sh
exec ./build/fastdllm "$@"
