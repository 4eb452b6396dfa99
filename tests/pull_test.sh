#!/usr/bin/env bash
# fastdllm pull, list, rm and -m ORG/NAME against a stand-in for the Hugging Face hub on
# 127.0.0.1 (tests/fake_hub.py, serving the fixture model): the cache layout huggingface_hub
# uses, cache reuse, resume after a broken connection or an interrupted pull, checksums, and
# every failure (401, 404, no network, offline, full disk) with one line and a consistent cache.
# Nothing here reaches outside the machine.
# Usage: bash tests/pull_test.sh <fastdllm binary> <source dir>
set -u
BIN="$1"; SRC="$2"
FIX="$SRC/tests/fixtures/tiny/model"
tmp=$(mktemp -d)
hub_pid=""
cleanup() {
    [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null
    mountpoint -q "$tmp/small" 2>/dev/null && umount "$tmp/small"
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

# Only the stand-in: no proxy, no token or cache settings from the caller's environment.
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_TOKEN_PATH HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_HUB_OFFLINE XDG_CACHE_HOME FASTDLLM_MODEL
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' HOME="$tmp/home"
mkdir -p "$HOME"

# The repositories served: the fixture model beside files fastdllm must not download (weights
# in other formats, a README, a file in a subfolder), and the same weights in two shards.
repo="$tmp/repo"; sharded="$tmp/sharded"
mkdir -p "$repo/onnx" "$sharded"
cp "$FIX"/* "$repo/"
echo '{"eos_token_id": 382}' > "$repo/generation_config.json"
head -c 5000 /dev/urandom > "$repo/pytorch_model.bin"
head -c 3000 /dev/urandom > "$repo/model.pth"
echo "# tiny" > "$repo/README.md"
echo "not a model" > "$repo/onnx/model.onnx"
cp "$FIX/config.json" "$FIX/tokenizer.json" "$sharded/"
python3 - "$FIX/model.safetensors" "$sharded" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
meta = header.pop("__metadata__", None)
names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
weight_map = {}
for i, part in enumerate([names[:len(names) // 2], names[len(names) // 2:]]):
    fname = f"model-{i + 1:05d}-of-00002.safetensors"
    h, blob = {}, b""
    for k in part:
        s, e = header[k]["data_offsets"]
        h[k] = dict(header[k], data_offsets=[len(blob), len(blob) + e - s])
        blob += data[s:e]
        weight_map[k] = fname
    if meta:
        h["__metadata__"] = meta
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    open(f"{sys.argv[2]}/{fname}", "wb").write(struct.pack("<Q", len(hb)) + hb + blob)
json.dump({"metadata": {"total_size": len(data)}, "weight_map": weight_map}, open(f"{sys.argv[2]}/model.safetensors.index.json", "w"))
PY

log="$tmp/hub.log"
start_hub() {  # fake_hub.py switches
    rm -f "$tmp/port"
    python3 "$SRC/tests/fake_hub.py" --port-file "$tmp/port" --log "$log" \
        --repo test-org/tiny="$repo" --repo test-org/tiny-sharded="$sharded" "$@" &
    hub_pid=$!
    for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
    export HF_ENDPOINT="http://127.0.0.1:$(cat "$tmp/port")"
}
stop_hub() { kill "$hub_pid" 2>/dev/null; wait "$hub_pid" 2>/dev/null; hub_pid=""; }
fresh_cache() { export HF_HOME="$tmp/hf-$1"; }

# expect_error NAME CODE TEXT cmd...: exit CODE and exactly one line on stderr containing TEXT.
expect_error() {
    local name="$1" code="$2" text="$3"; shift 3
    local err rc
    err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -qF -- "$text" <<<"$err" || [ "$(wc -l <<<"$err")" -ne 1 ]; then
        echo "FAIL: $name: exit $rc (want $code, one line containing: $text): $err"; fail=1
    fi
}
# expect_fail NAME CODE TEXT cmd...: the same for a failure after some files were done: stderr
# ends with the one error line (the lines before it are the files that finished).
expect_fail() {
    local name="$1" code="$2" text="$3"; shift 3
    local err rc
    err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
    if [ "$rc" -ne "$code" ] || ! tail -1 <<<"$err" | grep -qF -- "$text" || [ "$(grep -c "^fastdllm: error: " <<<"$err")" -ne 1 ] \
       || ! tail -1 <<<"$err" | grep -q "^fastdllm: error: "; then
        echo "FAIL: $name: exit $rc (want $code, a last line containing: $text): $err"; fail=1
    fi
}
sha256() { sha256sum "$1" | cut -d' ' -f1; }
gitblob() {  # git's id of a file's content
    if command -v git >/dev/null; then git hash-object --no-filters "$1"
    else python3 -c 'import hashlib, sys; d = open(sys.argv[1], "rb").read(); print(hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest())' "$1"; fi
}
no_snapshot() {  # the repository has no snapshot and no ref
    local root="$HF_HOME/hub/models--test-org--$1"
    [ -z "$(ls -A "$root/snapshots" 2>/dev/null)" ] && [ ! -e "$root/refs/main" ]
}
# A generate and an info run, minus what names the folder.
gen() {  # "": the default model
    local m=(); [ -n "$1" ] && m=(-m "$1")
    "$BIN" generate "${m[@]}" --prompt-ids 381,1,2,3 -n 32 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["tokens"], d["text"], d["nfe"])'
}
info() { "$BIN" info -m "$1" --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("dir"); d.pop("model"); print(json.dumps(d, sort_keys=True))'; }

start_hub

# --- A pull: the layout huggingface_hub writes -----------------------------------------------
fresh_cache a
out=$("$BIN" pull test-org/tiny 2>"$tmp/err"); rc=$?
check "pull exits 0 (stderr: $(cat "$tmp/err"))" '[ $rc -eq 0 ]'
check "pull reports what it did" 'grep -q "^pulled test-org/tiny (commit [0-9a-f]\{12\}): 4 of 4 files" <<<"$out"'
check "one line per finished file when stderr is not a terminal" '[ "$(grep -c "  downloaded in " "$tmp/err")" = 4 ]'
root="$HF_HOME/hub/models--test-org--tiny"
commit=$(cat "$root/refs/main" 2>/dev/null)
check "refs/main holds the commit, without a newline" '[[ "$commit" =~ ^[0-9a-f]{40}$ ]] && [ "$(wc -c <"$root/refs/main")" = 40 ]'
snap="$root/snapshots/$commit"
check "the snapshot holds exactly the wanted files" '[ "$(ls "$snap" | tr "\n" " ")" = "config.json generation_config.json model.safetensors tokenizer.json " ]'
check "model.safetensors -> ../../blobs/SHA256" '[ "$(readlink "$snap/model.safetensors")" = "../../blobs/$(sha256 "$FIX/model.safetensors")" ]'
check "config.json -> ../../blobs/GIT-BLOB-ID" '[ "$(readlink "$snap/config.json")" = "../../blobs/$(gitblob "$FIX/config.json")" ]'
check "tokenizer.json -> ../../blobs/GIT-BLOB-ID" '[ "$(readlink "$snap/tokenizer.json")" = "../../blobs/$(gitblob "$FIX/tokenizer.json")" ]'
check "the blobs are the files" 'cmp -s "$snap/model.safetensors" "$FIX/model.safetensors" && cmp -s "$snap/tokenizer.json" "$FIX/tokenizer.json"'
check "four blobs, nothing incomplete" '[ "$(ls "$root/blobs" | wc -l)" = 4 ] && ! ls "$root/blobs" | grep -q incomplete'
check "no .bin, .pth, README or subfolder file requested" '! grep -E "pytorch_model.bin|model.pth|README.md|onnx" "$log"'
check "LFS files come through the redirect" 'grep -q "^GET /cdn/$(sha256 "$FIX/model.safetensors") " "$log"'
check "locks where huggingface_hub keeps them" '[ -e "$HF_HOME/hub/.locks/models--test-org--tiny/$(sha256 "$FIX/model.safetensors").lock" ]'

# --- -m ORG/NAME runs from the cache, exactly as the folder does ----------------------------
want=$(gen "$FIX")
check "generate -m ORG/NAME = generate -m folder" '[ -n "$want" ] && [ "$(gen test-org/tiny)" = "$want" ]'
check "generate -m ORG/NAME@COMMIT" '[ "$(gen "test-org/tiny@$commit")" = "$want" ]'
check "a cached model goes by its NAME" '[ "$("$BIN" info -m test-org/tiny --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)[\"model\"])")" = tiny ]'
check "info -m ORG/NAME = info -m folder" '[ "$(info test-org/tiny)" = "$(info "$FIX")" ] && [ -n "$(info "$FIX")" ]'
check "tokenize -m ORG/NAME" '[ "$("$BIN" tokenize -m test-org/tiny "<|im_start|>user")" = "$("$BIN" tokenize -m "$FIX" "<|im_start|>user")" ]'
check "bench -m ORG/NAME" '"$BIN" bench -m test-org/tiny --tokens 1 --reps 1 --json >/dev/null 2>&1'
check "FASTDLLM_MODEL=ORG/NAME" '[ "$(FASTDLLM_MODEL=test-org/tiny gen "")" = "$want" ]'
expect_error "-m ORG/NAME not in the cache" 1 "not found: no such folder, and not in the Hugging Face cache at $HF_HOME/hub; download it with: fastdllm pull test-org/other" \
    "$BIN" generate -m test-org/other -p hi
expect_error "-m ORG/NAME@REV not in the cache" 1 "revision v9 is not in the Hugging Face cache" "$BIN" info -m test-org/tiny@v9
if ! "$BIN" --version | grep -q "^chat: not built"; then
    expect_error "--ar-model ORG/NAME not in the cache" 1 "download it with: fastdllm pull test-org/other" \
        "$BIN" chat --plain -m test-org/tiny --ar-model test-org/other
fi
expect_error "a missing folder is still reported as one" 1 "no such model folder" "$BIN" generate -m /nonexistent -p hi

# --- A second pull downloads nothing; list shows the models ----------------------------------
: > "$log"
out=$("$BIN" pull test-org/tiny 2>"$tmp/err"); rc=$?
check "second pull: exit 0, up to date" '[ $rc -eq 0 ] && grep -q "^test-org/tiny is up to date in the cache" <<<"$out"'
check "second pull: only the file list is asked for" '[ "$(grep -vc "^GET /api/" "$log")" = 0 ]'
check "second pull: every file reported in the cache" '[ "$(grep -c "  in the cache$" "$tmp/err")" = 4 ]'

"$BIN" pull test-org/tiny@v1 >/dev/null 2>&1
check "pull ORG/NAME@REV writes refs/REV" '[ "$(cat "$root/refs/v1")" = "$commit" ]'
check "generate -m ORG/NAME@REV" '[ "$(gen test-org/tiny@v1)" = "$want" ]'

out=$("$BIN" pull test-org/tiny-sharded 2>&1); rc=$?
sroot="$HF_HOME/hub/models--test-org--tiny-sharded"
ssnap="$sroot/snapshots/$(cat "$sroot/refs/main" 2>/dev/null)"
check "sharded pull: exit 0 ($out)" '[ $rc -eq 0 ]'
check "sharded pull: the index and both shards" '[ -L "$ssnap/model.safetensors.index.json" ] && [ -L "$ssnap/model-00001-of-00002.safetensors" ] && [ -L "$ssnap/model-00002-of-00002.safetensors" ]'
check "sharded: generate -m ORG/NAME = the single-file folder" '[ "$(gen test-org/tiny-sharded)" = "$want" ]'

list=$("$BIN" list)
size=$(cat "$FIX/model.safetensors" "$FIX/config.json" "$FIX/tokenizer.json" "$repo/generation_config.json" | wc -c)
check "list names both models" 'grep -q "^test-org/tiny " <<<"$list" && grep -q "^test-org/tiny-sharded " <<<"$list" && grep -q "main $(cut -c1-7 <<<"$commit")" <<<"$list"'
check "list --json: size and completeness" '"$BIN" list --json | python3 -c "
import json, sys
m = {x[\"model\"]: x for x in json.load(sys.stdin)[\"models\"]}
t = m[\"test-org/tiny\"]
sys.exit(0 if t[\"bytes\"] == $size and t[\"complete\"] and t[\"refs\"][\"main\"] == \"$commit\" and t[\"incomplete_bytes\"] == 0 else 1)"'

out=$("$BIN" rm test-org/tiny-sharded); rc=$?
check "rm: exit 0 and what it freed" '[ $rc -eq 0 ] && grep -q "^removed test-org/tiny-sharded (" <<<"$out"'
check "rm: the folder and its locks are gone" '[ ! -e "$sroot" ] && [ ! -e "$HF_HOME/hub/.locks/models--test-org--tiny-sharded" ]'
check "rm: list no longer shows it" '! "$BIN" list | grep -q "tiny-sharded"'
check "rm: the other model stays" '[ "$(gen test-org/tiny)" = "$want" ]'
expect_error "rm of a model not in the cache" 1 "test-org/tiny-sharded: not in the Hugging Face cache" "$BIN" rm test-org/tiny-sharded
expect_error "rm ORG/NAME@REV" 2 "rm removes a whole repository" "$BIN" rm test-org/tiny@v1
expect_error "pull without a model" 2 "give one model" "$BIN" pull
expect_error "pull of a path" 2 "a model on the hub is named ORG/NAME" "$BIN" pull ./models/tiny
expect_error "pull of a bad name" 2 "cannot contain '--' or '..'" "$BIN" pull test-org/a--b

# --- HF_HUB_OFFLINE: the cache only ---------------------------------------------------------
: > "$log"
out=$(HF_HUB_OFFLINE=1 "$BIN" pull test-org/tiny 2>&1); rc=$?
check "offline pull of a cached model: exit 0 ($out)" '[ $rc -eq 0 ] && grep -q "HF_HUB_OFFLINE is set" <<<"$out"'
expect_error "offline pull of a model not in the cache" 1 "HF_HUB_OFFLINE is set, so nothing is downloaded" \
    env HF_HUB_OFFLINE=1 "$BIN" pull test-org/tiny-sharded
check "offline: no request reached the hub" '[ ! -s "$log" ]'

# --- No network: a closed port --------------------------------------------------------------
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
expect_error "no network" 1 "cannot reach http://127.0.0.1:$closed" env HF_ENDPOINT="http://127.0.0.1:$closed" "$BIN" pull test-org/tiny-sharded
expect_error "no network, model in the cache" 1 "the cache already has test-org/tiny" env HF_ENDPOINT="http://127.0.0.1:$closed" "$BIN" pull test-org/tiny

# --- 404 ------------------------------------------------------------------------------------
expect_error "404 repository" 1 "test-org/nope: no such repository on $HF_ENDPOINT" "$BIN" pull test-org/nope
expect_error "404 revision" 1 "no revision 'nobranch'" "$BIN" pull test-org/tiny@nobranch
stop_hub

# --- A connection that breaks halfway once: resumed with a Range request ---------------------
fresh_cache drop; : > "$log"
start_hub --drop-once model.safetensors
out=$("$BIN" pull test-org/tiny 2>&1); rc=$?
sha=$(sha256 "$FIX/model.safetensors")
check "broken connection: the pull completes ($out)" '[ $rc -eq 0 ] && cmp -s "$HF_HOME/hub/models--test-org--tiny/blobs/$sha" "$FIX/model.safetensors"'
check "broken connection: resumed where it broke" 'grep -q "^GET /cdn/$sha bytes=$(( $(wc -c <"$FIX/model.safetensors") / 2 ))-$" "$log"'
check "broken connection: the retry is reported" 'grep -q "model.safetensors: the connection broke at .*; resuming, attempt 2 of 5" <<<"$out"'
stop_hub

# --- A server that ignores Range: the file starts over -------------------------------------
fresh_cache norange
start_hub --drop-once model.safetensors --no-range --no-redirect
out=$("$BIN" pull test-org/tiny 2>&1); rc=$?
check "Range ignored: the pull still completes ($out)" '[ $rc -eq 0 ] && cmp -s "$HF_HOME/hub/models--test-org--tiny/blobs/$sha" "$FIX/model.safetensors"'
stop_hub

# --- A connection that keeps breaking: one line, the part kept, resumed by the next pull -----
fresh_cache broken; : > "$log"
start_hub --drop-every model.safetensors
expect_fail "connection keeps breaking" 1 "test-org/tiny: model.safetensors: the download broke off 5 times" "$BIN" pull test-org/tiny
part="$HF_HOME/hub/models--test-org--tiny/blobs/$sha.incomplete"
check "broken 5 times: the part is kept as .incomplete" '[ -s "$part" ] && [ ! -e "${part%.incomplete}" ]'
check "broken 5 times: no snapshot, no ref" 'no_snapshot tiny'
check "list shows the unfinished download" '"$BIN" list | grep "^test-org/tiny " | grep -q "incomplete: pull it again"'
have=$(wc -c <"$part")
stop_hub; : > "$log"
start_hub
out=$("$BIN" pull test-org/tiny 2>&1); rc=$?
check "the next pull resumes the part ($out)" '[ $rc -eq 0 ] && grep -q "^GET /cdn/$sha bytes=$have-$" "$log" && cmp -s "$HF_HOME/hub/models--test-org--tiny/blobs/$sha" "$FIX/model.safetensors"'
check "resumed: the snapshot is complete" '[ "$(gen test-org/tiny)" = "$want" ]'
stop_hub

# --- Ctrl-C: stops, keeps the part, the next pull resumes ------------------------------------
fresh_cache int; : > "$log"
start_hub --stall-once model.safetensors
part="$HF_HOME/hub/models--test-org--tiny/blobs/$sha.incomplete"
set -m  # job control: the background pull does not ignore SIGINT
"$BIN" pull test-org/tiny >/dev/null 2>"$tmp/err" &
pid=$!
set +m
for _ in $(seq 200); do [ -s "$part" ] && break; sleep 0.05; done
sleep 0.2
kill -INT "$pid"; wait "$pid"; rc=$?
check "Ctrl-C: exit 130 and one line ($(cat "$tmp/err"))" '[ $rc -eq 130 ] && [ "$(grep -c "interrupted; unfinished files are kept" "$tmp/err")" = 1 ]'
check "Ctrl-C: the part is kept, no snapshot" '[ -s "$part" ] && no_snapshot tiny'
out=$("$BIN" pull test-org/tiny 2>&1); rc=$?
check "after Ctrl-C: the next pull resumes ($out)" '[ $rc -eq 0 ] && grep -q "^GET /cdn/$sha bytes=[1-9][0-9]*-$" "$log" && [ "$(gen test-org/tiny)" = "$want" ]'
stop_hub

# --- A wrong checksum is refused ------------------------------------------------------------
fresh_cache badsha
start_hub --bad-sha model.safetensors
expect_fail "checksum mismatch" 1 "test-org/tiny: model.safetensors: checksum mismatch: the hub lists SHA-256 $(printf wrong | sha256sum | cut -d' ' -f1), the download has $sha (deleted; nothing was added to the cache)" \
    "$BIN" pull test-org/tiny
check "checksum mismatch: no snapshot, no ref" 'no_snapshot tiny'
check "checksum mismatch: nothing kept of the file" '! ls "$HF_HOME/hub/models--test-org--tiny/blobs" | grep -q "^$(printf wrong | sha256sum | cut -c1-64)"'
expect_error "checksum mismatch: -m ORG/NAME says how to pull" 1 "download it with: fastdllm pull test-org/tiny" "$BIN" info -m test-org/tiny
stop_hub

# --- A private repository, then a gated one: the token from HF_TOKEN or the token file ------
fresh_cache private
start_hub --token s3cret
expect_error "private, no token" 1 "test-org/tiny: no such repository on $HF_ENDPOINT, or it is private and needs a token in HF_TOKEN" \
    "$BIN" pull test-org/tiny
expect_error "private, a wrong token" 1 "the hub refused the token from HF_TOKEN (401 Unauthorized)" env HF_TOKEN=wrong "$BIN" pull test-org/tiny
check "private: HF_TOKEN" 'HF_TOKEN=s3cret "$BIN" pull test-org/tiny >/dev/null 2>&1 && [ "$(gen test-org/tiny)" = "$want" ]'
stop_hub
fresh_cache gated
start_hub --gated s3cret
expect_fail "gated, no token (401)" 1 "test-org/tiny: the hub refused access (401 Unauthorized): the repository is gated or private; set HF_TOKEN" \
    "$BIN" pull test-org/tiny
expect_fail "gated, no access (403)" 1 "test-org/tiny: access denied (403 Forbidden): the repository is gated; ask for access on $HF_ENDPOINT/test-org/tiny" \
    env HF_TOKEN=other "$BIN" pull test-org/tiny
check "gated: no snapshot, no blob" 'no_snapshot tiny && [ -z "$(ls -A "$HF_HOME/hub/models--test-org--tiny/blobs")" ]'
mkdir -p "$HF_HOME"; echo s3cret > "$HF_HOME/token"
check "gated: the token file of huggingface-cli login" '"$BIN" pull test-org/tiny >/dev/null 2>&1 && [ "$(gen test-org/tiny)" = "$want" ]'
stop_hub

# --- A full disk ----------------------------------------------------------------------------
# A write that fails (a file-size limit, as a full disk fails a write): one line, the part kept.
fresh_cache fsize; : > "$log"
start_hub
err=$( (ulimit -f 100; exec "$BIN" pull test-org/tiny) 2>&1 >/dev/null); rc=$?
part="$HF_HOME/hub/models--test-org--tiny/blobs/$sha.incomplete"
check "write failure: exit 1, one error line ($err)" '[ $rc -eq 1 ] && [ "$(grep -c "^fastdllm: error: " <<<"$err")" = 1 ] && tail -1 <<<"$err" | grep -q "$sha.incomplete: write failed: File too large (the .* received are kept"'
check "write failure: no snapshot, the part kept" 'no_snapshot tiny && [ -s "$part" ]'
out=$("$BIN" pull test-org/tiny 2>&1); rc=$?
check "write failure: the next pull resumes ($out)" '[ $rc -eq 0 ] && grep -q "^GET /cdn/$sha bytes=[1-9][0-9]*-$" "$log" && [ "$(gen test-org/tiny)" = "$want" ]'
# A disk too small for the download (a 64 KB tmpfs, where one can be mounted): refused before writing.
mkdir -p "$tmp/small"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64k tmpfs "$tmp/small" 2>/dev/null; then
    export HF_HOME="$tmp/small/hf"
    expect_error "disk too small" 1 "not enough disk space for test-org/tiny: the download needs" "$BIN" pull test-org/tiny
    check "disk too small: no snapshot" 'no_snapshot tiny'
    umount "$tmp/small"
    echo "full disk (tmpfs): checked"
else
    echo "full disk (tmpfs): skipped (cannot mount a tmpfs here)"
fi
stop_hub

if [ $fail -eq 0 ]; then echo "pull_test: all passed"; fi
exit $fail
