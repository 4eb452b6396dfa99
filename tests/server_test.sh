#!/usr/bin/env bash
# fastdllm serve end to end, on 127.0.0.1 only, with clients written elsewhere: curl for every
# endpoint, error status, limit and the stream format; the official openai npm package
# (tests/server/, pinned by its package-lock.json, installed with npm ci) for chat, streaming and
# a bounded load test with aborted streams; then SIGTERM with requests in flight.
# Three servers: the demo model with the defaults (S1), the demo model with an API key and small
# limits (S2), and the random tiny fixture, whose bytes make UTF-8 edge cases likely (S3).
#   FASTDLLM_SKIP_NPM=1   leaves out the openai-client and load tests (no npm registry)
set -u
BIN="$1"; SRC="$2"
DEMO="$SRC/assets/models/demo-dllm"
TINY="$SRC/tests/fixtures/tiny/model"
NODE_DIR="$SRC/tests/server"
T0=$(date +%s)
TMP=$(mktemp -d)
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
# Under AddressSanitizer (scripts/sanitize.sh) freed memory is held in quarantine, and under
# ThreadSanitizer shadow memory grows with every thread, so the RSS comparison says nothing
# there; ASan's leak checker runs when the servers exit instead.
UNDER_ASAN=0; [ -n "${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}" ] && UNDER_ASAN=1

# start NAME ARGS...: a server on a free port; sets PORT and PID (0 when it did not start).
start() {
    local name="$1"; shift
    "$BIN" serve --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    PID=$!; PIDS+=("$PID"); PORT=""
    for _ in $(seq 300); do
        PORT=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9][0-9]*\)/ .*|\1|p' "$TMP/$name.log" 2>/dev/null)
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: $name did not start: $(cat "$TMP/$name.log")"; fail=1; PID=0; PORT=0
    return 1
}
# stop_wait PID SECONDS: sets RC to the exit status of the process, or "timeout" (then it is killed).
stop_wait() {
    local pid="$1" limit="$2" i
    for ((i = 0; i < limit * 20; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; RC=$?; return; fi
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; RC=timeout
}

# Requests. URL and AUTH name the server; CODE and BODY hold the answer.
AUTH=()
req() {  # METHOD PATH [curl args...]
    local method="$1" path="$2"; shift 2
    local out
    out=$(curl -s --max-time 120 -X "$method" "${AUTH[@]}" -w '\n%{http_code}' "$@" "$URL$path")
    CODE="${out##*$'\n'}"; BODY="${out%$'\n'*}"
}
post() { req POST "$1" -H 'Content-Type: application/json' --data-binary "$2"; }  # PATH JSON
chat() { post /v1/chat/completions "$1"; }
user() { printf '{"messages":[{"role":"user","content":"%s"}]%s}' "$1" "${2:+,$2}"; }  # TEXT [MORE FIELDS]
# pick EXPR: a Python expression of d, the JSON in BODY ("<invalid>" when it is not JSON).
pick() { python3 -c 'import json,sys
try: d = json.loads(sys.stdin.read())
except Exception: print("<invalid>"); sys.exit()
print(eval(sys.argv[1]))' "$1" <<<"$BODY"; }
# check_error NAME STATUS TEXT [PARAM]: an OpenAI error object with that status whose message has TEXT.
check_error() {
    local why
    why=$(python3 -c 'import json,sys
status, code, text, param = sys.argv[1:5]
try: e = json.loads(sys.stdin.read())["error"]
except Exception as x: print("not an error object:", x); sys.exit()
if code != status: print(f"status {code}, want {status}")
elif set(e) != {"message", "type", "param", "code"} or not isinstance(e["message"], str) or not isinstance(e["type"], str): print("bad error object")
elif text not in e["message"]: print(f"message lacks {text!r}")
elif param and e["param"] != param: print("param", repr(e["param"]), "want", repr(param))' "$2" "$CODE" "$3" "${4:-}" <<<"$BODY")
    if [ -n "$why" ]; then echo "FAIL: $1: $why: ${BODY:0:300}"; fail=1; fi
}
health_queued() { curl -s --max-time 5 "$URL/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])' 2>/dev/null; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Requests that keep the model busy: the demo model with a long system prompt, one-cell blocks
# and no cache, so that every pass runs the whole prompt again; SLOW goes on for 1000 passes
# (its answer never reaches a stop token before), MEDIUM for 11.
SLOW=$(python3 -c 'import json,sys
print(json.dumps({"messages": [{"role": "system", "content": "You are a helpful assistant. " * 50},
                               {"role": "user", "content": "Tell me a quote."}],
                  "max_tokens": 1000, "block_size": 1, "sub_block_size": 1, "threshold": 1, "cache": "none", "stream": True}))')
SLOW_PLAIN=${SLOW/\"stream\": true/\"stream\": false}
MEDIUM=$(python3 -c 'import json,sys
print(json.dumps({"messages": [{"role": "system", "content": "You are a helpful assistant. " * 10},
                               {"role": "user", "content": "Tell me a quote."}],
                  "max_tokens": 10, "block_size": 1, "sub_block_size": 1, "threshold": 1, "cache": "none"}))')

# =============================================================================================
# S1: the demo model with the defaults.
start s1 -m "$DEMO" || exit 1
S1_PID=$PID; S1_URL="http://127.0.0.1:$PORT"; URL=$S1_URL
check "binds 127.0.0.1 by default" 'grep -q "on http://127.0.0.1:$PORT/" "$TMP/s1.log" && ! grep -q "^warning" "$TMP/s1.log"'
check "listens on loopback only" "awk 'NR > 1 && \$4 == \"0A\" {print \$2}' /proc/net/tcp | grep -qx \"0100007F:$(printf %04X "$PORT")\""

# GET endpoints.
req GET /health
check "/health" '[ "$CODE" = 200 ] && [ "$(pick "d[\"status\"], d[\"model\"], d[\"queued\"]")" = "('"'ok', 'demo-dllm', 0"')" ]'
req GET /v1/models
check "/v1/models lists the model and the AR baseline" '[ "$CODE" = 200 ] && [ "$(pick "d[\"object\"], [m[\"id\"] for m in d[\"data\"]], d[\"data\"][0][\"object\"], d[\"data\"][0][\"meta\"][\"block_size\"]")" = "('"'list', ['demo-dllm', 'demo-ar'], 'model', 32"')" ]'
req GET /
check "GET / serves the web page" '[ "$CODE" = 200 ] && grep -qi "<html" <<<"$BODY"'

# Chat, not streamed.
chat "$(user "What is 12 + 30?")"
check "chat: 12 + 30" '[ "$CODE" = 200 ] && [ "$(pick "d[\"choices\"][0][\"message\"][\"content\"]")" = "12 + 30 = 42." ]'
check "chat: object, id, role, finish" '[ "$(pick "d[\"object\"], d[\"id\"][:9], d[\"model\"], d[\"choices\"][0][\"message\"][\"role\"], d[\"choices\"][0][\"finish_reason\"], d[\"choices\"][0][\"index\"]")" = "('"'chat.completion', 'chatcmpl-', 'demo-dllm', 'assistant', 'stop', 0"')" ]'
check "chat: usage" '[ "$(pick "d[\"usage\"][\"prompt_tokens\"] > 0 and d[\"usage\"][\"completion_tokens\"] > 0 and d[\"usage\"][\"total_tokens\"] == d[\"usage\"][\"prompt_tokens\"] + d[\"usage\"][\"completion_tokens\"]")" = True ]'
check "chat: timings" '[ "$(pick "set(d[\"timings\"]) >= set([\"decoder\", \"prompt_n\", \"prompt_ms\", \"cached_n\", \"predicted_n\", \"predicted_ms\", \"predicted_per_second\", \"request_tokens_per_second\", \"tokens_per_forward\", \"forward_passes\"]) and d[\"timings\"][\"decoder\"] == \"diffusion\" and d[\"timings\"][\"forward_passes\"] > 0")" = True ]'
chat '{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":[{"type":"text","text":"Spell the word "},{"type":"text","text":"garden."}]}],"max_completion_tokens":64}'
check "chat: a system message, content as parts" '[ "$CODE" = 200 ] && [ "$(pick "d[\"choices\"][0][\"message\"][\"content\"]")" = "g-a-r-d-e-n" ]'
# Earlier turns reach the model (the demo model was trained on single turns only, so the answer
# itself is not checked): the prompt is longer than the last message alone by the turns' tokens.
chat "$(user "Spell the word garden.")"; alone=$(pick 'd["usage"]["prompt_tokens"]')
chat '{"messages":[{"role":"user","content":"What is 2 + 2?"},{"role":"assistant","content":"2 + 2 = 4."},{"role":"user","content":"Spell the word garden."}],"max_tokens":32}'
check "chat: earlier turns are in the prompt ($alone tokens alone, $(pick 'd["usage"]["prompt_tokens"]') with them)" '[ "$CODE" = 200 ] && [ "$(pick "d[\"usage\"][\"prompt_tokens\"]")" -ge $((alone + 20)) ]'
chat '{"model":"demo-ar","messages":[{"role":"user","content":"Spell the word garden."}]}'
check "demo-ar answers a request that names it" '[ "$CODE" = 200 ] && [ "$(pick "d[\"model\"], d[\"choices\"][0][\"message\"][\"content\"], d[\"timings\"][\"decoder\"], d[\"timings\"][\"tokens_per_forward\"]")" = "('"'demo-ar', 'g-a-r-d-e-n', 'ar', 1.0"')" ]'
# curl -d sends application/x-www-form-urlencoded: the body is still read as JSON, at any size.
BIGQ=$(python3 -c 'print("{\"messages\":[{\"role\":\"system\",\"content\":\"" + "You are a helpful assistant. " * 300 + "\"},{\"role\":\"user\",\"content\":\"What is 12 + 30?\"}],\"max_tokens\":32}")')
req POST /v1/chat/completions -d "$BIGQ"
check "a 9 KB body sent by curl -d without a JSON Content-Type ($CODE ${BODY:0:200})" '[ "$CODE" = 200 ] && [ "$(pick "d[\"usage\"][\"prompt_tokens\"] > 1500")" = True ]'

# Decoding settings as extra fields.
chat "$(user "What is 12 + 30?" '"mode":"ar"')"
check "mode ar" '[ "$(pick "d[\"choices\"][0][\"message\"][\"content\"], d[\"timings\"][\"decoder\"]")" = "('"'12 + 30 = 42.', 'ar'"')" ]'
chat "$(user "What is 12 + 30?" '"threshold":1')"
check "threshold 1: one cell per pass" '[ "$(pick "d[\"choices\"][0][\"message\"][\"content\"], d[\"timings\"][\"tokens_per_forward\"] <= 1")" = "('"'12 + 30 = 42.', True"')" ]'
for cache in none prefix dual dual-overlap; do
    chat "$(user "What is 12 + 30?" "\"cache\":\"$cache\",\"unmask\":\"prefix\"")"
    check "cache $cache, unmask prefix" '[ "$(pick "d[\"choices\"][0][\"message\"][\"content\"]")" = "12 + 30 = 42." ]'
done
post /v1/chat/completions "$(user "What is 12 + 30?" '"block_size":16,"sub_block_size":4,"stream":true,"stream_options":{"include_steps":true}')"
check "block_size 16, sub_block_size 4 in the steps" '[ "$(grep "\"step\"" <<<"$BODY" | head -1 | sed "s/^data: //" | python3 -c "import json,sys; s=json.load(sys.stdin)[\"step\"]; print(s[\"block_size\"], s[\"sub_block_size\"], len(s[\"block\"]))")" = "16 4 16" ]'
chat "$(user "Tell me a quote." '"temperature":1.5,"top_p":0.9,"seed":7')"; a1=$(pick 'd["choices"][0]["message"]["content"]')
chat "$(user "Tell me a quote." '"temperature":1.5,"top_p":0.9,"seed":7')"; a2=$(pick 'd["choices"][0]["message"]["content"]')
check "seed + temperature: the same answer again" '[ "$CODE" = 200 ] && [ -n "$a1" ] && [ "$a1" = "$a2" ]'

# Stop strings, token limits.
chat "$(user "What is 12 + 30?" '"stop":["="]')"
check "stop string cuts the text" '[ "$(pick "d[\"choices\"][0][\"message\"][\"content\"], d[\"choices\"][0][\"finish_reason\"]")" = "('"'12 + 30 ', 'stop'"')" ]'
post /v1/chat/completions "$(user "What is 12 + 30?" '"stop":[" = 4","xyz"],"stream":true')"
check "streamed stop string: no part of it sent" '[ "$(sed -n "s/^data: {/{/p" <<<"$BODY" | python3 -c "import json,sys; print(\"\".join(c[\"delta\"].get(\"content\",\"\") for l in sys.stdin for c in json.loads(l)[\"choices\"]))")" = "12 + 30" ]'
chat "$(user "Tell me a quote." '"max_tokens":5')"
check "max_tokens 5: finish length, at most 5 tokens" '[ "$(pick "d[\"choices\"][0][\"finish_reason\"], d[\"usage\"][\"completion_tokens\"] <= 5, len(d[\"choices\"][0][\"message\"][\"content\"]) > 0")" = "('"'length', True, True"')" ]'
post /v1/chat/completions "$(user "Tell me a quote." '"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}')"
check "streamed max_tokens 5" '[ "$(sed -n "s/^data: {/{/p" <<<"$BODY" | python3 -c "import json,sys
f, u = None, None
for l in sys.stdin:
    j = json.loads(l); u = j.get(\"usage\", u)
    for c in j[\"choices\"]: f = c[\"finish_reason\"] or f
print(f, u[\"completion_tokens\"] <= 5)")" = "length True" ]'

# The stream format: role chunk, content chunks, finish chunk, usage chunk, [DONE]; every data
# line valid JSON and valid UTF-8, one id throughout.
stream_check() {  # FILE OBJECT WANT_TEXT: prints what is wrong ("" when all is well)
    python3 - "$@" <<'PY'
import json, sys
path, obj, want = sys.argv[1:4]
raw = open(path, "rb").read()
bad = []
datas = []
for line in raw.split(b"\n"):
    if not line or line.startswith(b":"): continue
    if not line.startswith(b"data: "): bad.append(f"not an SSE data line: {line[:80]!r}"); continue
    try: line.decode("utf-8")
    except UnicodeDecodeError: bad.append("a data line is not UTF-8")
    datas.append(line[6:])
if not datas or datas[-1] != b"[DONE]" or datas.count(b"[DONE]") != 1: bad.append("does not end with one data: [DONE]")
chunks = []
for d in datas[:-1]:
    try: chunks.append(json.loads(d))
    except Exception: bad.append(f"not JSON: {d[:80]!r}")
if len(chunks) < 4: bad.append(f"only {len(chunks)} chunks"); print("; ".join(bad)); sys.exit()
if len({(c["id"], c["created"], c["model"], c["object"]) for c in chunks}) != 1 or chunks[0]["object"] != obj: bad.append("id/created/model/object differ or wrong")
chat = obj == "chat.completion.chunk"
first, finish, usage, content = chunks[0], chunks[-2], chunks[-1], chunks[1:-2]
if chat and first["choices"][0]["delta"].get("role") != "assistant": bad.append("first chunk lacks the role")
if not content or any(len(c["choices"]) != 1 or c["choices"][0]["finish_reason"] is not None for c in content): bad.append("bad content chunks")
if len(finish["choices"]) != 1 or finish["choices"][0]["finish_reason"] not in ("stop", "length"): bad.append("no finish chunk before the usage chunk")
if chat and finish["choices"][0]["delta"] != {}: bad.append("the finish chunk carries a delta")
if usage["choices"] != [] or "usage" not in usage or "timings" not in usage: bad.append("the last chunk is not the usage chunk")
piece = (lambda c: c["choices"][0]["delta"].get("content", "")) if chat else (lambda c: c["choices"][0]["text"])
text = "".join(piece(c) for c in chunks[:-1])
if text != want: bad.append(f"text {text!r}, want {want!r}")
print("; ".join(bad))
PY
}
curl -sN --max-time 60 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
     -d "$(user "What is 12 + 30?" '"stream":true,"stream_options":{"include_usage":true}')" -D "$TMP/h.txt" -o "$TMP/s.txt"
why=$(stream_check "$TMP/s.txt" chat.completion.chunk "12 + 30 = 42.")
check "chat stream format ($why)" '[ -z "$why" ]'
check "stream Content-Type text/event-stream" 'grep -qi "^content-type: text/event-stream" "$TMP/h.txt"'
check "stream: usage chunk has usage and timings" '[ "$(grep "\"usage\"" "$TMP/s.txt" | sed "s/^data: //" | python3 -c "import json,sys; j=json.load(sys.stdin); print(j[\"usage\"][\"completion_tokens\"] > 0, j[\"timings\"][\"decoder\"])")" = "True diffusion" ]'
curl -sN --max-time 60 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
     -d "$(user "Spell the word garden." '"stream":true')" -o "$TMP/s.txt"
check "no usage chunk unless asked" '! grep -q "\"usage\"" "$TMP/s.txt" && grep -q "^data: \[DONE\]$" "$TMP/s.txt"'

# Step chunks: one per forward pass; every unmasked cell inside its block; the cells' text read
# in position order gives the answer.
steps_check() {  # FILE DECODER WANT
    python3 - "$@" <<'PY'
import json, sys
path, decoder, want, want_kinds = sys.argv[1:5]
steps, bad, cells, text, kinds = [], [], {}, "", set()
for line in open(path, encoding="utf-8"):
    if line.startswith("data: {"):
        j = json.loads(line[6:])
        if "step" in j:
            if j["choices"] != []: bad.append("a step chunk has choices")
            steps.append(j["step"])
        else:
            for c in j["choices"]: text += c["delta"].get("content", "")
keys = {"kind", "decoder", "block_index", "block_start", "block_size", "sub_block_size", "prompt_tokens", "nfe", "unmasked", "text", "block", "block_text"}
if not steps: bad.append("no step chunks")
for i, s in enumerate(steps):
    if not set(s) >= keys: bad.append(f"step {i}: fields {sorted(s)}"); break
    if s["decoder"] != decoder or s["kind"] not in ("prefill", "block", "subblock", "commit", "decode"): bad.append(f"step {i}: {s['decoder']} {s['kind']}")
    if s["nfe"] != (steps[i - 1]["nfe"] + 1 if i else s["nfe"]): bad.append(f"step {i}: nfe {s['nfe']} does not count passes")
    if len(s["block"]) != s["block_size"] or len(s["block_text"]) != s["block_size"] or len(s["text"]) != len(s["unmasked"]): bad.append(f"step {i}: sizes")
    if any((b == -1) != (t == "") for b, t in zip(s["block"], s["block_text"]) if b < 0): bad.append(f"step {i}: a masked cell has text")
    kinds.add(s["kind"])
    for (pos, tok, conf), t in zip(s["unmasked"], s["text"]):
        if s["kind"] == "commit":  # the finished block again, which decides the next block's first cell
            if pos != s["block_start"] + s["block_size"]: bad.append(f"step {i}: commit decided cell {pos}")
        elif not s["block_start"] <= pos < s["block_start"] + s["block_size"]: bad.append(f"step {i}: cell {pos} outside block {s['block_start']}+{s['block_size']}")
        elif s["block"][pos - s["block_start"]] != tok or s["block_text"][pos - s["block_start"]] != t: bad.append(f"step {i}: block[{pos}] is not the unmasked token")
        if not 0 <= conf <= 1: bad.append(f"step {i}: confidence {conf}")
        if pos < s["prompt_tokens"]: bad.append(f"step {i}: cell {pos} in the prompt")
        cells[pos] = t
drawn = "".join(cells[p] for p in sorted(cells)).split("<|im_end|>")[0]
if drawn != want: bad.append(f"the cells read {drawn!r}")
if text != want: bad.append(f"the text reads {text!r}")
if " ".join(sorted(kinds)) != want_kinds: bad.append(f"kinds {sorted(kinds)}")
print("; ".join(bad[:5]))
PY
}
curl -sN --max-time 60 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
     -d "$(user "What is 12 + 30?" '"stream":true,"stream_options":{"include_steps":true}')" -o "$TMP/s.txt"
why=$(steps_check "$TMP/s.txt" diffusion "12 + 30 = 42." "block")
check "diffusion step chunks ($why)" '[ -z "$why" ]'
# Smaller blocks: a prefill pass, several blocks, commits, and sub-block passes with the dual cache.
curl -sN --max-time 60 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
     -d "$(user "Reverse the word garden." '"block_size":8,"sub_block_size":4,"cache":"dual-overlap","stream":true,"stream_options":{"include_steps":true}')" -o "$TMP/s.txt"
why=$(steps_check "$TMP/s.txt" diffusion "The reverse of garden is nedrag." "block commit prefill subblock")
check "step chunks over several blocks ($why)" '[ -z "$why" ]'
curl -sN --max-time 60 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
     -d '{"model":"demo-ar","messages":[{"role":"user","content":"What is 12 + 30?"}],"stream":true,"stream_options":{"include_steps":true}}' -o "$TMP/s.txt"
why=$(steps_check "$TMP/s.txt" ar "12 + 30 = 42." "decode prefill")
check "AR step chunks ($why)" '[ -z "$why" ]'

# Completions: a raw prompt, no chat template.
RAW='<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n'
post /v1/completions "{\"prompt\":\"$RAW\",\"max_tokens\":32}"
check "completions: raw prompt" '[ "$CODE" = 200 ] && [ "$(pick "d[\"object\"], d[\"id\"][:5], d[\"choices\"][0][\"text\"], d[\"choices\"][0][\"finish_reason\"]")" = "('"'text_completion', 'cmpl-', '12 + 30 = 42.', 'stop'"')" ]'
curl -sN --max-time 60 "$URL/v1/completions" -H 'Content-Type: application/json' \
     -d "{\"prompt\":[\"$RAW\"],\"stream\":true,\"stream_options\":{\"include_usage\":true}}" -o "$TMP/s.txt"
why=$(stream_check "$TMP/s.txt" text_completion "12 + 30 = 42.")
check "completions stream format ($why)" '[ -z "$why" ]'

# Errors.
req POST /v1/chat/completions -H 'Content-Type: application/json' -d '{"messages": [}'
check_error "bad JSON" 400 "not valid JSON"
chat '[1, 2]'; check_error "not an object" 400 "JSON object"
chat '{"messages":"hi"}'; check_error "messages of the wrong type" 400 "messages must be a list" messages
chat '{"messages":[]}'; check_error "no messages" 400 "empty" messages
chat '{"messages":[{"role":"robot","content":"hi"}]}'; check_error "unknown role" 400 'unknown role "robot"' 'messages[0].role'
chat '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}'; check_error "last message not the user's" 400 "last message" messages
chat '{"messages":[{"role":"user","content":"hi"},{"role":"system","content":"x"},{"role":"user","content":"hi"}]}'; check_error "system message not first" 400 "must come first"
chat '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}'; check_error "image content" 400 "only text"
chat '{"messages":[{"role":"user","content":42}]}'; check_error "content of the wrong type" 400 "content must be" 'messages[0].content'
chat "$(user hi '"n":2')"; check_error "n = 2" 400 "only n = 1" n
chat "$(user hi '"mode":"fast"')"; check_error "bad mode" 400 'mode must be "ar" or "diffusion"' mode
chat "$(user hi '"cache":"fast"')"; check_error "bad cache" 400 "cache must be" cache
chat "$(user hi '"unmask":"random"')"; check_error "bad unmask" 400 "unmask must be" unmask
chat "$(user hi '"threshold":1.5')"; check_error "threshold out of range" 400 "threshold must be in [0.0, 1.0]" threshold
chat "$(user hi '"block_size":0')"; check_error "block_size 0" 400 "block_size must be in" block_size
chat "$(user hi '"block_size":32,"sub_block_size":5')"; check_error "sub_block_size not dividing the block" 400 "divide"
chat "$(user hi '"max_tokens":"5"')"; check_error "max_tokens a string" 400 "max_tokens must be an integer" max_tokens
chat "$(user hi '"max_tokens":0')"; check_error "max_tokens 0" 400 "max_tokens must be in [1, 4096]" max_tokens
chat "$(user hi '"max_completion_tokens":4097')"; check_error "max_completion_tokens over the limit" 400 "must be in [1, 4096]" max_completion_tokens
chat "$(user hi '"temperature":3')"; check_error "temperature 3" 400 "temperature must be in [0.0, 2.0]" temperature
chat "$(user hi '"temperature":"hot"')"; check_error "temperature a string" 400 "temperature must be a number" temperature
chat "$(user hi '"top_p":0')"; check_error "top_p 0" 400 "top_p" top_p
chat "$(user hi '"seed":1.5')"; check_error "seed not an integer" 400 "seed must be an integer" seed
chat "$(user hi '"stop":["a","b","c","d","e"]')"; check_error "five stop strings" 400 "at most 4 stop strings" stop
chat "$(user hi '"stop":[""]')"; check_error "empty stop string" 400 "stop string is empty" stop
chat "$(user hi '"stream":"yes"')"; check_error "stream a string" 400 "stream must be true or false" stream
chat "$(user hi '"stream_options":{"include_steps":1}')"; check_error "include_steps not a boolean" 400 "include_steps must be true or false" stream_options.include_steps
chat "$(user hi '"model":7')"; check_error "model not a string" 400 "model must be a string" model
chat "$(python3 -c 'import json; print(json.dumps({"messages": [{"role": "user", "content": "hi"}] * 257}))')"
check_error "257 messages" 400 "at most 256 messages" messages
post /v1/completions '{"prompt":""}'; check_error "empty prompt" 400 "prompt is empty" prompt
post /v1/completions '{"prompt":[1,2,3]}'; check_error "prompt of token ids" 400 "prompt must be a string" prompt
post /v1/completions '{}'; check_error "no prompt" 400 "prompt is required" prompt
LONG=$(python3 -c 'import json; print(json.dumps({"messages": [{"role": "user", "content": "a b " * 3000}]}))')
chat "$LONG"; check_error "prompt longer than the context" 400 "the prompt has 6009 tokens, but with max_tokens 256 the model's context of 2048 positions leaves room for 1728"
check "context error code" '[ "$(pick "d[\"error\"][\"code\"]")" = context_length_exceeded ]'
req POST /v1/chat/completions -F 'messages=hi'; check_error "a multipart form" 400 "not valid JSON"
chat "$(user "What is 12 + 30?" '"tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"},"presence_penalty":1')"
check "fields this server does not read are ignored" '[ "$CODE" = 200 ] && [ "$(pick "d[\"choices\"][0][\"message\"][\"content\"]")" = "12 + 30 = 42." ]'
req GET /v1/nothing; check_error "404" 404 "no such endpoint: GET /v1/nothing"
req POST /v1/models -H 'Content-Type: application/json' -d '{}'; check_error "404 for POST /v1/models" 404 "no such endpoint"
req GET /v1/chat/completions; check_error "404 for GET /v1/chat/completions" 404 "no such endpoint"
req OPTIONS /v1/chat/completions
check "CORS preflight" '[ "$CODE" = 204 ]'
req GET /health
check "the server is well after the errors" '[ "$CODE" = 200 ]'
echo "server_test: curl checks done ($(($(date +%s) - T0)) s)"

# =============================================================================================
# S3: the tiny random model. Its byte tokens make characters that span several tokens likely:
# the stream must never split one (a split would reach the client as U+FFFD where the whole
# answer has a character), and a seed must give the same answer each time.
start s3 -m "$TINY" && {
    URL3="http://127.0.0.1:$PORT"
    why=$(python3 - "$URL3" <<'PY'
import json, sys, urllib.request
url = sys.argv[1] + "/v1/chat/completions"
def post(body):
    r = urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}), timeout=60)
    return r.read()
bad, multibyte, answers = [], 0, set()
for seed in range(4):
    for mode in ("diffusion", "ar"):
        body = {"messages": [{"role": "user", "content": "héllo wörld ☃"}], "max_tokens": 400, "temperature": 2, "seed": seed, "mode": mode}
        whole = json.loads(post(body))["choices"][0]["message"]["content"]
        again = json.loads(post(body))["choices"][0]["message"]["content"]
        if whole != again: bad.append(f"seed {seed} {mode}: two answers")
        answers.add(whole)
        deltas = []
        for line in post(dict(body, stream=True)).split(b"\n"):
            if line.startswith(b"data: {"):
                line.decode("utf-8")  # strict: raises on invalid UTF-8
                for c in json.loads(line[6:])["choices"]:
                    deltas.append(c["delta"].get("content", ""))
        if "".join(deltas) != whole: bad.append(f"seed {seed} {mode}: the deltas differ from the answer")
        multibyte += sum(1 for ch in whole if ord(ch) > 127 and ch != "\ufffd")
if multibyte == 0: bad.append("no answer had a character of several bytes (nothing was tested)")
# The same seeded request sent alone and among others decoded at once (--parallel): the same answer.
import concurrent.futures
body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 300, "temperature": 1, "seed": 5}
alone = json.loads(post(body))["choices"][0]["message"]["content"]
others = [dict(body, seed=s, messages=[{"role": "user", "content": "x" * s}]) for s in range(1, 4)]
with concurrent.futures.ThreadPoolExecutor(5) as ex:
    together = [ex.submit(post, b) for b in [body] + others + [body]]
    together = [json.loads(f.result())["choices"][0]["message"]["content"] for f in together]
if together[0] != alone or together[-1] != alone: bad.append("a seeded answer changed when decoded beside others")
if len(answers) < 4: bad.append("different seeds gave the same answers")
print("; ".join(bad))
PY
)
    check "UTF-8 never split in deltas; seeds reproducible, alone or not ($why)" '[ -z "$why" ]'
    kill -TERM "$PID"
    stop_wait "$PID" 10
    check "tiny server: SIGTERM exits 0 (got $RC)" '[ "$RC" = 0 ]'
}

# =============================================================================================
# The openai npm client and the load test, on S1.
NODE_OK=0
if [ "${FASTDLLM_SKIP_NPM:-0}" = 1 ]; then
    echo "server_test: openai client and load tests skipped (FASTDLLM_SKIP_NPM=1)"
elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "FAIL: node and npm are needed for the openai client tests (or set FASTDLLM_SKIP_NPM=1)"; fail=1
else
    want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/openai"]["version"])' "$NODE_DIR/package-lock.json")
    have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$NODE_DIR/node_modules/openai/package.json" 2>/dev/null)
    if [ "$have" = "$want" ] || (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$TMP/npm.log" 2>&1); then
        NODE_OK=1
    else
        echo "FAIL: npm ci in tests/server: $(tail -3 "$TMP/npm.log")"; fail=1
    fi
fi
if [ $NODE_OK = 1 ]; then
    out=$(cd "$NODE_DIR" && timeout 120 node chat.mjs "$URL/v1" 2>&1)
    check "openai client: chat.mjs ran" '! grep -q "FAIL" <<<"$out" && grep -q "all checks passed" <<<"$out"'
    grep "FAIL" <<<"$out"
    echo "server_test: openai client done ($(($(date +%s) - T0)) s)"

    # Load: a warm-up round, the RSS, the full round, the RSS again.
    (cd "$NODE_DIR" && timeout 120 node load.mjs "$URL/v1" 8 6 100 >/dev/null 2>&1)
    sleep 0.5
    rss0=$(rss_kb "$S1_PID")
    out=$(cd "$NODE_DIR" && timeout 200 node load.mjs "$URL/v1" 8 20 180 2>&1); rc=$?
    echo "$out" | grep -v "^FAIL" | sed 's/^/server_test: /'
    grep "^FAIL" <<<"$out"
    check "load: 8 clients x 20 requests without an error (exit $rc)" '[ $rc = 0 ]'
    for _ in $(seq 50); do [ "$(health_queued)" = 0 ] && break; sleep 0.1; done
    check "load: /health shows queued 0 after the load" '[ "$(health_queued)" = 0 ]'
    sleep 0.5
    rss1=$(rss_kb "$S1_PID")
    echo "server_test: RSS before the load $((rss0 / 1024)) MB, after $((rss1 / 1024)) MB"
    if [ $UNDER_ASAN = 0 ]; then
        check "load: RSS after the load within 8 MB of before ($rss0 -> $rss1 kB)" '[ $((rss1 - rss0)) -lt 8192 ]'
    fi
    req GET /health
    check "S1 well after the load" '[ "$CODE" = 200 ]'
    echo "server_test: load done ($(($(date +%s) - T0)) s)"
fi

# =============================================================================================
# S2: an API key, small limits, one request at a time.
PARALLEL=(); "$BIN" serve --help | grep -q -- "--parallel" && PARALLEL=(--parallel 1)
start s2 -m "$DEMO" --api-key sekret-key --max-queue 3 --max-body 16384 --timeout 2 --threshold 1 "${PARALLEL[@]}" && {
    S2_PID=$PID; URL="http://127.0.0.1:$PORT"
    AUTH=()
    req GET /v1/models; check_error "no key: 401" 401 "API key"
    check "401 code invalid_api_key" '[ "$(pick "d[\"error\"][\"code\"]")" = invalid_api_key ]'
    AUTH=(-H "Authorization: Bearer wrong-key"); req GET /v1/models; check_error "wrong key: 401" 401 "API key"
    AUTH=(-H "Authorization: Bearer sekret-key-and-more"); req GET /v1/models; check_error "longer key: 401" 401 "API key"
    AUTH=(-H "Authorization: sekret-key"); req GET /v1/models; check_error "key without Bearer: 401" 401 "API key"
    AUTH=(); chat "$(user "What is 12 + 30?")"; check_error "chat without the key: 401" 401 "API key"
    req GET /health; check "/health needs no key" '[ "$CODE" = 200 ]'
    AUTH=(-H "Authorization: Bearer sekret-key")
    req GET /v1/models; check "right key: 200" '[ "$CODE" = 200 ]'
    chat "$(user "What is 12 + 30?")"
    check "right key: an answer" '[ "$CODE" = 200 ] && [ "$(pick "d[\"choices\"][0][\"message\"][\"content\"]")" = "12 + 30 = 42." ]'
    check "--threshold 1 is the default of a request" '[ "$(pick "d[\"timings\"][\"tokens_per_forward\"] <= 1")" = True ]'
    chat "$(user "What is 12 + 30?" '"threshold":0.9')"
    check "a request's threshold overrides --threshold" '[ "$(pick "d[\"timings\"][\"tokens_per_forward\"] > 1")" = True ]'
    big=$(python3 -c 'import json; print(json.dumps({"messages": [{"role": "user", "content": "x" * 20000}]}))')
    chat "$big"; check_error "body over --max-body: 413" 413 "too large"
    req GET /health; check "well after a 413" '[ "$CODE" = 200 ]'

    # Queue full (503), FIFO order, and a client that goes away cancels its request: a slow
    # streamed request runs, three more wait, a fifth is refused; then the slow one's client
    # closes its connection, and the three waiting ones must be answered in order, soon.
    why=$(python3 - "$PORT" "$SLOW" "$MEDIUM" <<'PY'
import json, socket, sys, threading, time, urllib.error, urllib.request
port, slow, medium = int(sys.argv[1]), sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
H = {"Content-Type": "application/json", "Authorization": "Bearer sekret-key"}
bad = []
def post(body):
    try:
        r = urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", body.encode(), H), timeout=120)
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
def queued():
    return json.loads(urllib.request.urlopen(base + "/health", timeout=10).read())["queued"]
def wait_queued(n, limit=60):
    end = time.time() + limit
    while time.time() < end:
        if queued() == n: return True
        time.sleep(0.02)
    return False
t = time.time(); code, r = post(medium); t_medium = time.time() - t
if code != 200: bad.append(f"medium request: {code}")
# The slow one, streamed on a raw socket: wait for its first text.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer sekret-key\r\nContent-Length: {len(slow)}\r\n\r\n{slow}".encode())
s.settimeout(60)
got = b""
while b'"content":"' not in got.split(b'"role"', 1)[-1]:
    d = s.recv(65536)
    if not d: break
    got += d
if not got.startswith(b"HTTP/1.1 200"):
    print("the slow request was refused:", got[:200]); sys.exit()
done, results = {}, {}
def medium_req(i):
    results[i] = post(medium)
    done[i] = time.time()
threads = []
for i in range(3):
    th = threading.Thread(target=medium_req, args=(i,)); th.start(); threads.append(th)
    if not wait_queued(i + 1): bad.append(f"request {i} not queued")
code, r = post(medium)
if code != 503 or r["error"]["code"] != "queue_full" or "busy" not in r["error"]["message"]: bad.append(f"a fourth waiting request: {code} {r}")
t_close = time.time()
s.shutdown(socket.SHUT_RDWR); s.close()
for th in threads: th.join(120)
for i in range(3):
    code, r = results.get(i, (0, {}))
    if code != 200 or not r["choices"][0]["message"]["content"]: bad.append(f"request {i}: {code}")
order = sorted(range(3), key=lambda i: done.get(i, 1e18))
if order != [0, 1, 2]: bad.append(f"answered in the order {order}, not as they came")
took = max(done.values(), default=1e18) - t_close
if took > 4 + 6 * t_medium: bad.append(f"the waiting requests took {took:.1f} s after the slow one's client left (one alone takes {t_medium:.2f} s): it was not cancelled")
if queued() != 0: bad.append("queued is not 0 at the end")
print("; ".join(bad))
PY
)
    check "503 when the queue is full, FIFO, cancel on disconnect ($why)" '[ -z "$why" ]'
    check "the slow request's client going away is logged as 499" 'grep -q "POST /v1/chat/completions 499 " "$TMP/s2.log"'

    # Time-outs: a connection that sends nothing, and one that stops half way through its
    # request, are dropped after --timeout (2 s) or so.
    why=$(python3 - "$PORT" <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
res = {}
def probe(name, payload):
    s = socket.create_connection(("127.0.0.1", port)); t = time.time()
    if payload: s.sendall(payload)
    s.settimeout(30)
    data, first = b"", 0
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            if not data: first = time.time() - t
            data += d
    except OSError: pass
    res[name] = (first if data else time.time() - t, time.time() - t, data)
ths = [threading.Thread(target=probe, args=a) for a in
       [("idle", b""), ("half a request", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"),
        ("half a body", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret-key\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess")]]
for t in ths: t.start()
for t in ths: t.join()
bad = []
for name, (answered, closed, data) in res.items():
    if answered > 4.5: bad.append(f"{name}: answered or dropped after {answered:.1f} s")
    if closed > 8: bad.append(f"{name}: closed after {closed:.1f} s")
    if name != "idle" and not data.startswith(b"HTTP/1.1 4"): bad.append(f"{name}: {data[:40]!r}")
print("; ".join(bad))
PY
)
    check "idle and stalled connections time out ($why)" '[ -z "$why" ]'

    kill -INT "$S2_PID"
    stop_wait "$S2_PID" 10
    check "SIGINT: exit 0 (got $RC)" '[ "$RC" = 0 ]'
    check "SIGINT: stopped cleanly" 'grep -q "fastdllm serve: stopped" "$TMP/s2.log"'
}
echo "server_test: limits done ($(($(date +%s) - T0)) s)"

# =============================================================================================
# SIGTERM on S1 with a streamed answer running and a plain one waiting for its answer: the
# streaming client gets an error event and [DONE], the waiting one a 503, and the server exits 0
# within seconds.
URL=$S1_URL; AUTH=()
curl -sN --max-time 100 "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$SLOW" -o "$TMP/term-stream.txt" &
CURL1=$!
for _ in $(seq 600); do grep -q '"content":"[^"]' "$TMP/term-stream.txt" 2>/dev/null && break; sleep 0.1; done
curl -s --max-time 100 "$URL/v1/chat/completions" -H 'Content-Type: application/json' -d "$SLOW_PLAIN" \
     -w '\n%{http_code}' -o "$TMP/term-wait.txt" >"$TMP/term-wait.code" &
CURL2=$!
sleep 1  # the second request is read and submitted (it runs beside the first, or waits)
kill -TERM "$S1_PID"
t=$(date +%s.%N)
stop_wait "$S1_PID" 10
secs=$(python3 -c "import time; print(round(time.time() - $t, 1))")
wait "$CURL1" "$CURL2"
check "SIGTERM: exit 0 within 10 s (got $RC after $secs s)" '[ "$RC" = 0 ]'
check "SIGTERM: the stream ends with an error event, then [DONE] ($(tail -c 300 "$TMP/term-stream.txt"))" '[ "$(grep "^data: " "$TMP/term-stream.txt" | tail -2 | python3 -c "import json,sys
e, d = sys.stdin.read().splitlines()
print(json.loads(e[6:])[\"error\"][\"message\"], d)")" = "the server is shutting down data: [DONE]" ]'
check "SIGTERM: the waiting request gets 503 ($(cat "$TMP/term-wait.txt" "$TMP/term-wait.code" | head -c 300))" '[ "$(tail -1 "$TMP/term-wait.code")" = 503 ] && grep -q "shutting down" "$TMP/term-wait.txt"'
check "SIGTERM: stopped cleanly" 'grep -q "fastdllm serve: stopped" "$TMP/s1.log"'
[ $fail = 0 ] || tail -8 "$TMP/s1.log" | sed 's/^/server_test: s1: /'

echo "server_test: $(($(date +%s) - T0)) s"
if [ $fail -eq 0 ]; then echo "server_test: all passed"; fi
exit $fail
