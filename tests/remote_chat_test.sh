#!/usr/bin/env bash
# `fastdllm chat --server URL` end to end, on 127.0.0.1 only: the plain chat as a client of
#   - fastdllm serve with the demo models: the answer and its statistics line (the same tokens and
#     forward passes as the chat on the model loaded here), two prompts in one conversation,
#     compare mode (both answers, the speedup line), an API key refused and accepted;
#   - a small OpenAI-style server in Python that streams text deltas only (as llama-server or
#     vLLM do): the answer, and Ctrl-C cancelling it by closing the stream;
#   - a dead address: one error line and exit status 1;
# and, where tmux is installed, the TUI against fastdllm serve: masked cells in the block view
# that fill in, and the answer's statistics.
#   bash tests/remote_chat_test.sh <fastdllm binary> <source dir>
set -u
BIN="$1"; SRC="$2"
DEMO="$SRC/assets/models/demo-dllm"
TMP=$(mktemp -d)
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "${SOCK:-}" ] && tmux -L "$SOCK" kill-server >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
if "$BIN" --version | grep -q "^chat: not built"; then
    echo "remote_chat_test: skipped (built without the chat)"
    exit 77
fi
export HOME="$TMP/home" XDG_DATA_HOME="$TMP/data"
mkdir -p "$HOME" "$XDG_DATA_HOME"

# start NAME ARGS...: fastdllm serve on a free port; sets PORT (empty when it did not start).
start() {
    local name="$1"; shift
    "$BIN" serve --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    local pid=$!; PIDS+=("$pid"); PORT=""
    for _ in $(seq 300); do
        PORT=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9][0-9]*\)/ .*|\1|p' "$TMP/$name.log" 2>/dev/null)
        [ -n "$PORT" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: $name did not start: $(cat "$TMP/$name.log")"; fail=1
    return 1
}
STATS='^\[[0-9]+ tokens · [0-9.]+ tok/s · [0-9.]+ tok/forward · NFE [0-9]+ · prefill [0-9.]+ ms\]$'
# counts LINE: "N tokens NFE M" from a statistics line.
counts() { sed -n 's/^\[\([0-9]*\) tokens · .* NFE \([0-9]*\) · .*/\1 tokens NFE \2/p' <<<"$1" | head -1; }

start demo -m "$DEMO" || exit 1
URL="http://127.0.0.1:$PORT"

# ---- 1. one prompt: the answer, and the statistics of the server's decoding ----
out=$(printf 'Spell the word garden.\n' | "$BIN" chat --plain --server "$URL" 2>"$TMP/err1"); rc=$?
check "answer over the server (exit $rc, stderr: $(cat "$TMP/err1"))" '[ $rc = 0 ] && [ "$(head -1 <<<"$out")" = "g-a-r-d-e-n" ]'
check "statistics line in brackets: $out" 'grep -Eq "$STATS" <<<"$out"'
local_out=$(printf 'Spell the word garden.\n' | "$BIN" chat --plain -m "$DEMO" 2>/dev/null)
check "the same tokens and forward passes as the model loaded here ($(counts "$out") vs $(counts "$local_out"))" \
    '[ -n "$(counts "$out")" ] && [ "$(counts "$out")" = "$(counts "$local_out")" ]'
echo "ok: $(head -1 <<<"$out") $(grep -E "$STATS" <<<"$out")"

# ---- 2. a conversation of two prompts; --mode ar over the server ----
out=$(printf 'Spell the word garden.\nWhat is 5 + 7?\n' | "$BIN" chat --plain --server "$URL/v1" 2>&1)
check "two prompts in one conversation: $out" 'grep -qx "g-a-r-d-e-n" <<<"$out" && grep -qx "5 + 7 = 12." <<<"$out" && [ "$(grep -Ec "$STATS" <<<"$out")" = 2 ]'
out=$(printf 'What is 5 + 7?\n' | "$BIN" chat --plain --server "$URL" --mode ar 2>&1)
check "--mode ar over the server: $out" 'grep -Eq "$STATS" <<<"$out" && grep -q "tokens · .* 1.00 tok/forward" <<<"$out"'

# ---- 3. compare mode: the AR baseline the server lists, then the dLLM, and the speedup ----
out=$(printf 'Spell the word garden.\n' | "$BIN" chat --plain --server "$URL" --mode compare 2>&1)
check "compare: the AR baseline's lane: $out" 'grep -qx "\[demo-ar · AR baseline\]" <<<"$out"'
check "compare: the dLLM's lane" 'grep -qx "\[demo-dllm · diffusion\]" <<<"$out"'
check "compare: both answers" '[ "$(grep -c "^g-a-r-d-e-n$" <<<"$out")" = 2 ] && [ "$(grep -Ec "$STATS" <<<"$out")" = 2 ]'
check "compare: the speedup line" 'grep -Eq "^\[speedup [0-9.]+x( \([^)]*\))?: diffusion [0-9.]+ tok/s \([0-9.]+ tok/fwd, NFE [0-9]+\) vs AR [0-9.]+ tok/s \(NFE [0-9]+\), prompt included\]$" <<<"$out"'
echo "ok: compare mode: $(grep speedup <<<"$out")"

# ---- 4. a dead address: one line, exit 1 ----
DEAD=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
err=$(printf 'hello\n' | "$BIN" chat --plain --server "http://127.0.0.1:$DEAD" 2>&1 >/dev/null); rc=$?
check "dead URL: exit $rc, stderr: $err" '[ $rc = 1 ] && [ "$(wc -l <<<"$err")" = 1 ] && grep -q "^fastdllm chat: cannot reach the server at http://127.0.0.1:$DEAD: " <<<"$err"'
err=$("$BIN" chat --plain --server "ftp://127.0.0.1:$DEAD" 2>&1 </dev/null); rc=$?
check "not an http address: exit $rc, stderr: $err" '[ $rc = 1 ] && grep -q "http:// or https://" <<<"$err"'
err=$(printf 'hello\n' | "$BIN" chat --plain --server "$URL" --remote-model nosuch 2>&1 >/dev/null); rc=$?
check "a model the server does not list: exit $rc, stderr: $err" '[ $rc = 1 ] && [ "$(wc -l <<<"$err")" = 1 ] && grep -q "has no model .nosuch. (it lists: demo-dllm, demo-ar)" <<<"$err"'
err=$("$BIN" chat --plain --server "$URL" -m "$DEMO" 2>&1 </dev/null); rc=$?
check "--server with -m: exit $rc, stderr: $err" '[ $rc = 2 ] && grep -q "leave out -m" <<<"$err"'

# ---- 5. an API key ----
if start keyed -m "$DEMO" --api-key sesame; then
    KURL="http://127.0.0.1:$PORT"
    err=$(printf 'hello\n' | FASTDLLM_API_KEY= "$BIN" chat --plain --server "$KURL" 2>&1 >/dev/null); rc=$?
    check "no key: exit $rc, stderr: $err" '[ $rc = 1 ] && [ "$(wc -l <<<"$err")" = 1 ] && grep -q "refused the request (HTTP 401).*--api-key" <<<"$err"'
    out=$(printf 'Spell the word garden.\n' | "$BIN" chat --plain --server "$KURL" --api-key sesame 2>&1)
    check "--api-key: $out" 'grep -qx "g-a-r-d-e-n" <<<"$out"'
    out=$(printf 'Spell the word garden.\n' | FASTDLLM_API_KEY=sesame "$BIN" chat --plain --server "$KURL" 2>&1)
    check "\$FASTDLLM_API_KEY: $out" 'grep -qx "g-a-r-d-e-n" <<<"$out"'
fi

# ---- 6. a server that streams text only (no steps), and Ctrl-C ----
cat >"$TMP/plain_server.py" <<'PY'
# An OpenAI-style server that streams text deltas only; "slow" in the prompt: 50 deltas, 0.2 s apart.
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "plain-model", "object": "model"}]}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = req["messages"][-1]["content"]
        with open(sys.argv[1] + ".req", "w") as f: json.dump(req, f)
        self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
        def send(obj):
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n"); self.wfile.flush()
        chunk = lambda delta, fin=None: {"object": "chat.completion.chunk", "model": "plain-model",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}
        try:
            send(chunk({"role": "assistant", "content": ""}))
            pieces = ["tick "] * 50 if "slow" in prompt else ["Hello", ", wor", "ld ", "\u00e9\u00e8!"]
            for p in pieces:
                send(chunk({"content": p}))
                if "slow" in prompt: time.sleep(0.2)
            send(chunk({}, "stop"))
            send({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}})
            self.wfile.write(b"data: [DONE]\n\n"); self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            open(sys.argv[1] + ".gone", "w").close()
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
python3 "$TMP/plain_server.py" "$TMP/plain" >"$TMP/plain.port" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/plain.port" ] && break; sleep 0.1; done
PURL="http://127.0.0.1:$(head -1 "$TMP/plain.port")"
out=$(printf 'Say hello.\n' | "$BIN" chat --plain --server "$PURL" -n 40 --temp 0.5 2>&1)
check "text-only stream: $out" '[ "$(head -1 <<<"$out")" = "Hello, world éè!" ] && grep -Eq "^\[7 tokens · [0-9.]+ tok/s · 1.00 tok/forward · NFE 7 · prefill [0-9.]+ ms\]$" <<<"$out"'
check "the request: model, messages, stream options, settings" 'python3 - "$TMP/plain.req" <<'"'"'PY'"'"'
import json, sys
r = json.load(open(sys.argv[1]))
ok = (r["model"] == "plain-model" and r["messages"] == [{"role": "user", "content": "Say hello."}] and r["stream"] is True
      and r["stream_options"] == {"include_usage": True, "include_steps": True} and r["max_tokens"] == 40
      and r["temperature"] == 0.5 and r["mode"] == "ar")
sys.exit(0 if ok else 1)
PY'
# Ctrl-C during the answer: the answer is cancelled, the stream closed, the chat goes on (and ends at EOF).
{ printf 'slow please\n'; sleep 3; } | "$BIN" chat --plain --server "$PURL" >"$TMP/cancel.out" 2>&1 &
CPID=$!
for _ in $(seq 50); do grep -q tick "$TMP/cancel.out" && break; sleep 0.1; done
kill -INT "$CPID"
wait "$CPID"; rc=$?
for _ in $(seq 30); do [ -e "$TMP/plain.gone" ] && break; sleep 0.1; done
check "Ctrl-C cancels the answer (exit $rc): $(cat "$TMP/cancel.out")" '[ $rc = 0 ] && grep -Eq "^\[[0-9]+ tokens? · .* · cancelled\]$" "$TMP/cancel.out"'
check "Ctrl-C closes the stream" '[ -e "$TMP/plain.gone" ]'

# ---- 7. the TUI on the server: the block view fills in ----
if command -v tmux >/dev/null; then
    SOCK="fdl-remote-$$-$RANDOM"
    TERMINAL=tmux-256color
    infocmp "$TERMINAL" >/dev/null 2>&1 || TERMINAL=screen-256color
    printf 'set -g default-terminal %s\nset -g history-limit 100\n' "$TERMINAL" >"$TMP/tmux.conf"
    screen() { tmux -L "$SOCK" capture-pane -p -t tui; }
    wait_for() {  # REGEX SECONDS
        local i
        for ((i = 0; i < $2 * 10; i++)); do screen | grep -Eq -- "$1" && return 0; sleep 0.1; done
        return 1
    }
    tmux -L "$SOCK" -f "$TMP/tmux.conf" new-session -d -s tui -x 100 -y 30 \
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 '$BIN' chat --server '$URL' -n 64; echo \"APP EXITED rc=\$?\"; sleep 600"
    if wait_for 'block view' 30; then
        check "the status bar names the model and the server: $(screen | tail -2)" 'screen | grep "demo-dllm · diffusion" | grep -qF "$URL"'
        tmux -L "$SOCK" send-keys -t tui "/delay 60" Enter
        wait_for 'slow motion: 60 ms' 5
        tmux -L "$SOCK" send-keys -t tui "hello there" Enter
        saw_masked=0; saw_decided=0
        for ((i = 0; i < 300; i++)); do
            s=$(screen)
            if grep -Eq 'block [0-9]+ @' <<<"$s"; then
                cells=$(grep -E '^│.*│$' <<<"$s")
                grep -q '[░▒]' <<<"$cells" && saw_masked=1
                grep -Eq '│ *[^│░▒ ]' <<<"$cells" && saw_decided=1
            fi
            grep -q 'decoding…' <<<"$s" || { [ $i -gt 20 ] && break; }
            sleep 0.1
        done
        check "TUI: masked cells in the block view while decoding" '[ $saw_masked = 1 ]'
        check "TUI: decided cells in the block view" '[ $saw_decided = 1 ]'
        check "TUI: the answer's statistics" 'wait_for "[0-9]+ tokens · [0-9.]+ tok/s · [0-9.]+ tok/forward · NFE [0-9]+" 30'
        tmux -L "$SOCK" send-keys -t tui "/quit" Enter
        check "TUI: /quit" 'wait_for "APP EXITED rc=0" 10'
        [ $fail = 0 ] || screen
        echo "ok: TUI block view over the server"
    else
        echo "FAIL: the TUI did not start on the server"; screen; fail=1
    fi
else
    echo "remote_chat_test: tmux not installed: TUI part skipped"
fi

[ $fail = 0 ] && echo "remote_chat_test: all checks passed"
exit $fail
