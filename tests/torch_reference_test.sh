#!/usr/bin/env bash
# ctest: bash tests/torch_reference_test.sh <path-to-fastdllm-binary> <source-dir>
# An independent check of the engine on the shipped models: bench/torch_reference.py decodes the
# first 3 evaluation prompts of each family with its own PyTorch forward and decoders (AR; block
# diffusion with the dual, dual-overlap, prefix and no cache, and with --unmask prefix) and must produce the
# engine's tokens and number of forward passes (engine in float32) on every prompt.
set -uo pipefail
BIN=${1:?usage: torch_reference_test.sh BIN SRC}
SRC=${2:?usage: torch_reference_test.sh BIN SRC}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$SRC" || exit 1
for cache in dual dual-overlap prefix none; do
  modes=diffusion
  [ "$cache" = dual ] && modes=ar,diffusion
  /usr/bin/python3 bench/torch_reference.py --bin "$BIN" --limit 3 --threads 1 --cache "$cache" --modes "$modes" \
    --out-dir "$TMP" --check > "$TMP/log" 2>&1 || { cat "$TMP/log" >&2; echo "FAIL: cache $cache" >&2; exit 1; }
  grep -E '^\| (ar|diffusion)' "$TMP/log"
done
/usr/bin/python3 bench/torch_reference.py --bin "$BIN" --limit 3 --threads 1 --cache dual --unmask prefix \
  --modes diffusion --out-dir "$TMP" --check > "$TMP/log" 2>&1 || { cat "$TMP/log" >&2; echo "FAIL: --unmask prefix" >&2; exit 1; }
grep -E '^\| diffusion' "$TMP/log"
echo "PASS"
