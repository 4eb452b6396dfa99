#!/usr/bin/env bash
# The web page of `fastdllm serve` in a real browser: headless Chromium opens it, the page sends
# prompts and draws the decoding, and tests/web/page_test.py reads what it shows once each answer
# is done: the answers, the block view's cells and the steps that decided them, the statistics,
# compare mode's two answers and speedup line, the keyboard, Stop, Clear, escaping of typed text
# and the API key field. A screenshot must be a 1280x800 PNG. Skipped (exit 77, shown as skipped by ctest) without Chromium.
set -u
BIN="$1"; SRC="$2"
MODEL="$SRC/assets/models/demo-dllm"

CHROME=""
for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then CHROME=$(command -v "$c"); break; fi
done
if [ -z "$CHROME" ]; then
    echo "skipped: chromium is not installed (scripts/install-deps.sh installs it)"
    exit 77
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail=0

# start_server NAME [flags...]: `fastdllm serve --port 0` in the background (this shell's child,
# stopped on exit); sets PORT from its stderr line "... on http://127.0.0.1:PORT/".
start_server() {
    local name="$1"; shift
    "$BIN" serve -m "$MODEL" --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    PORT=""
    for _ in $(seq 1 300); do
        PORT=$(grep -o 'on http://127\.0\.0\.1:[0-9]*/' "$TMP/$name.err" 2>/dev/null | grep -o '[0-9]*/$' | tr -d /)
        [ -n "$PORT" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: $name: the server did not start: $(cat "$TMP/$name.err")"
    exit 1
}

t0=$(date +%s.%N)
start_server keyed --api-key web-test-key
KEYED_PORT=$PORT
start_server open
URL="http://127.0.0.1:$PORT/"

if ! curl -sf "$URL" | grep -q 'id="blockview"'; then echo "FAIL: GET / does not serve the page"; fail=1; fi

python3 "$SRC/tests/web/page_test.py" --chrome "$CHROME" --url "$URL" \
    --keyed-url "http://127.0.0.1:$KEYED_PORT/" --key web-test-key --screenshot "$TMP/page.png" || fail=1

if ! python3 - "$TMP/page.png" <<'PY'; then echo "FAIL: the screenshot is not a 1280x800 PNG with content"; fail=1; fi
import struct, sys
try:
    b = open(sys.argv[1], "rb").read()
except OSError:
    sys.exit(1)
ok = b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR" and struct.unpack(">II", b[16:24]) == (1280, 800) and len(b) > 20000
sys.exit(0 if ok else 1)
PY
if [ -n "${FASTDLLM_WEB_SCREENSHOT:-}" ] && [ -f "$TMP/page.png" ]; then cp "$TMP/page.png" "$FASTDLLM_WEB_SCREENSHOT"; fi

if ! grep -q "POST /v1/chat/completions 200" "$TMP/open.err"; then echo "FAIL: the server logged no answered request"; fail=1; fi

[ "$fail" -eq 0 ] || exit 1
echo "web page test passed in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
