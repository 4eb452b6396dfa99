#!/usr/bin/env bash
# Every bad input a user can give, through the real binary: broken model folders of all kinds,
# bad flags, prompts that are too long or not UTF-8, sessions that cannot be read or written.
# Each must give one line on stderr and the documented exit code (1: bad data or request,
# 2: bad command line), never a crash. The table of input -> what the user sees is written to
# docs/bad-inputs.md (paths shortened, machine-dependent numbers replaced by N).
# Usage: bash tests/bad_inputs_test.sh <fastdllm binary> <source dir>
set -u
BIN="$1"; SRC="$2"
FIX="$SRC/tests/fixtures"
TINY="$FIX/tiny/model"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/xdg" HOME="$tmp/home"
mkdir -p "$XDG_DATA_HOME" "$HOME"
fail=0
complete=0  # the table is written only when every row ran (the KV row needs a plain build)
rows=()

# Shortens paths and hides numbers that depend on the machine, for the table.
show() {
    local s="$1"
    s="${s//$tmp\//}"; s="${s//$FIX\//tests/fixtures/}"; s="${s//$BIN/fastdllm}"
    sed -E 's/only [0-9.]+ ([KMG]i)?B of memory/only N GiB of memory/; s/\.tmp\.[0-9]+/.tmp.PID/g' <<<"$s"
}
md() {  # one table cell: valid UTF-8 (a message may quote raw bytes of a file), '|' escaped
    local s; s=$(show "$1" | python3 -c 'import sys; sys.stdout.write(sys.stdin.buffer.read().decode("utf-8", "replace"))')
    s="${s//|/\\|}"; printf '%s' "$s"
}
row() {  # section, what, command shown, exit code, what the user sees
    rows+=("| $1 | $2 | \`$(md "$3")\` | $4 | $(md "$5") |")
}

# bad NAME SECTION CODE "EXPECTED TEXT" cmd...: stderr must be exactly one line containing TEXT.
bad() {
    local section="$1" name="$2" code="$3" text="$4"; shift 4
    local err rc
    err=$("$@" 2>&1 >/dev/null </dev/null); rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -qF -- "$text" <<<"$err" || [ "$(wc -l <<<"$err")" -ne 1 ]; then
        echo "FAIL: $name: exit $rc (want $code, stderr containing: $text)"
        echo "  stderr: $err"
        fail=1
    fi
    local shown; shown=$(printf '%q ' "$@")
    row "$section" "$name" "${shown% }" "$rc" "$err"
}

# A copy of the tiny model to break. Prints its path.
model() {
    local d="$tmp/$1"
    rm -rf "$d"; cp -r "$TINY" "$d"; chmod -R u+w "$d"
    echo "$d"
}
py() { python3 - "$@"; }

# ---------------------------------------------------------------------------------------------
S="model folder"
bad "$S" "folder does not exist" 1 "no such model folder" "$BIN" generate -m "$tmp/nonexistent" -p hi
bad "$S" "a file instead of a folder" 1 "not a folder" "$BIN" info -m "$TINY/config.json"
mkdir -p "$tmp/empty"
bad "$S" "empty folder" 1 "config.json: missing (is this a model folder?)" "$BIN" info -m "$tmp/empty"

m=$(model badjson); echo '{"architectures": [' > "$m/config.json"
bad "$S" "config.json is not JSON" 1 "config.json: invalid JSON" "$BIN" info -m "$m"
m=$(model arch); echo '{"architectures": ["LlamaForCausalLM"]}' > "$m/config.json"
bad "$S" "unsupported architecture" 1 "unknown architecture \"LlamaForCausalLM\"" "$BIN" info -m "$m"
m=$(model heads); sed -i 's/"num_attention_heads": 4/"num_attention_heads": 0/' "$m/config.json"
bad "$S" "a size out of range" 1 "\"num_attention_heads\" = 0 is out of range" "$BIN" info -m "$m"
m=$(model kvheads); sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' "$m/config.json"
bad "$S" "heads not a multiple of KV heads" 1 "is not a multiple of num_key_value_heads (3)" "$BIN" info -m "$m"
m=$(model hidden); sed -i 's/"hidden_size": 64/"hidden_size": "64"/' "$m/config.json"
bad "$S" "a field of the wrong type" 1 "\"hidden_size\" must be an integer" "$BIN" info -m "$m"

m=$(model noweights); rm "$m/model.safetensors"
bad "$S" "no weights file" 1 "no model.safetensors or model.safetensors.index.json" "$BIN" info -m "$m"
m=$(model emptyweights); : > "$m/model.safetensors"
bad "$S" "empty weights file" 1 "file too small to be safetensors (0 bytes)" "$BIN" info -m "$m"
m=$(model truncated); head -c 100000 "$TINY/model.safetensors" > "$m/model.safetensors"
bad "$S" "truncated weights (interrupted download)" 1 "extends past the end of the file (truncated download?)" "$BIN" generate -m "$m" -p hi
m=$(model truncheader); head -c 100 "$TINY/model.safetensors" > "$m/model.safetensors"
bad "$S" "truncated inside the header" 1 "exceeds the file" "$BIN" info -m "$m"
m=$(model garbage); echo "<html>404 Not Found</html>" > "$m/model.safetensors"
bad "$S" "not a safetensors file (an HTML error page)" 1 "truncated or not safetensors" "$BIN" info -m "$m"
m=$(model corrupt); py "$m/model.safetensors" <<'PY'
import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[40:60] = b"#" * 20; open(p, "wb").write(b)
PY
bad "$S" "corrupted header" 1 "bad safetensors header JSON" "$BIN" info -m "$m"
m=$(model shape); sed -i 's/"intermediate_size": 176/"intermediate_size": 128/' "$m/config.json"
bad "$S" "a tensor of the wrong shape (config and weights disagree)" 1 "has shape [176, 64], expected [128, 64]" "$BIN" info -m "$m"
m=$(model layers); sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$m/config.json"
bad "$S" "a missing tensor" 1 "missing tensor model.layers.2." "$BIN" info -m "$m"
m=$(model dtype); py "$m/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h["model.norm.weight"]["dtype"] = "I16"
hj = json.dumps(h).encode(); hj += b" " * ((8 - (len(hj) + 8) % 8) % 8)
open(p, "wb").write(struct.pack("<Q", len(hj)) + hj + b[8 + n:])
PY
bad "$S" "a tensor of an integer dtype" 1 "model.norm.weight has dtype I16" "$BIN" info -m "$m"
m=$(model shards); mv "$m/model.safetensors" "$m/model-00001-of-00002.safetensors"
py "$m" <<'PY'
import json, struct, sys
d = sys.argv[1]; b = open(d + "/model-00001-of-00002.safetensors", "rb").read(); n = struct.unpack("<Q", b[:8])[0]
wm = {k: "model-00001-of-00002.safetensors" for k in json.loads(b[8:8 + n]) if k != "__metadata__"}
wm["model.norm.weight"] = "model-00002-of-00002.safetensors"
json.dump({"metadata": {}, "weight_map": wm}, open(d + "/model.safetensors.index.json", "w"))
PY
bad "$S" "an index naming a missing shard" 1 "names shard model-00002-of-00002.safetensors, which is missing" "$BIN" info -m "$m"
echo '{"weight_map": ' > "$m/model.safetensors.index.json"
bad "$S" "an index that is not JSON" 1 "model.safetensors.index.json: invalid JSON" "$BIN" info -m "$m"
m=$(model notok); rm "$m/tokenizer.json"
bad "$S" "no tokenizer.json" 1 "tokenizer.json: cannot open" "$BIN" info -m "$m"
m=$(model badtok); echo '{"model": {"type": "Unigram"}}' > "$m/tokenizer.json"
bad "$S" "an unsupported tokenizer" 1 "unsupported model type \"Unigram\" (only BPE)" "$BIN" info -m "$m"
m=$(model nomask); py "$m/tokenizer.json" <<'PY'
import json, sys
p = sys.argv[1]; t = json.load(open(p)); t["added_tokens"] = [a for a in t["added_tokens"] if a["content"] != "|<MASK>|"]
json.dump(t, open(p, "w"))
PY
bad "$S" "a block-diffusion model whose tokenizer has no mask token" 1 "no |<MASK>| token" "$BIN" generate -m "$m" -p hi
m=$(model huge); py "$m/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c.update(hidden_size=65536, intermediate_size=1 << 20, num_hidden_layers=1024, num_attention_heads=512, num_key_value_heads=512)
json.dump(c, open(p, "w"))
PY
bad "$S" "a model too large for this machine's memory" 1 "GiB, but only" "$BIN" info -m "$m"

# ---------------------------------------------------------------------------------------------
S="command line"
bad "$S" "unknown command" 2 "unknown command 'frobnicate'" "$BIN" frobnicate
bad "$S" "unknown option" 2 "unknown option --frobnicate" "$BIN" generate --frobnicate
bad "$S" "option without its value" 2 "--model needs a value (DIR)" "$BIN" info --model
bad "$S" "switch given a value" 2 "--json takes no value" "$BIN" info --json=yes
bad "$S" "not a number" 2 "--threshold: 'high' is not a number" "$BIN" generate -m "$TINY" -p hi --threshold high
bad "$S" "number out of range" 2 "--threshold: 2 is out of range [0, 1]" "$BIN" generate -m "$TINY" -p hi --threshold 2
bad "$S" "NaN" 2 "--temp: 'nan' is not a number" "$BIN" generate -m "$TINY" -p hi --temp nan
bad "$S" "integer overflow" 2 "--max-new-tokens: '99999999999999999999' is not an integer" "$BIN" generate -m "$TINY" -p hi -n 99999999999999999999
bad "$S" "zero tokens" 2 "--max-new-tokens: 0 is out of range" "$BIN" generate -m "$TINY" -p hi -n 0
bad "$S" "negative seed" 2 "--seed: '-1' is not a non-negative integer" "$BIN" generate -m "$TINY" -p hi --seed -1
bad "$S" "unknown cache mode" 2 "--cache: expected none, prefix, dual or dual-overlap" "$BIN" generate -m "$TINY" -p hi --cache fast
bad "$S" "unknown unmasking rule" 2 "--unmask: expected confidence or prefix" "$BIN" generate -m "$TINY" -p hi --unmask random
bad "$S" "unknown decoding mode" 2 "--mode: expected ar or diffusion" "$BIN" generate -m "$TINY" -p hi --mode beam
bad "$S" "sub-block does not divide the block" 2 "must divide the block size" "$BIN" generate -m "$TINY" -p hi --sub-block-size 5
bad "$S" "fewer new tokens than a block" 1 "must be at least the block size" "$BIN" generate -m "$TINY" -p hi -n 8 --mode diffusion
bad "$S" "no prompt" 2 "give exactly one of -p/--prompt, --prompt-file (- for standard input) or --prompt-ids" "$BIN" generate -m "$TINY"
bad "$S" "two prompts" 2 "give exactly one of" "$BIN" generate -m "$TINY" -p hi --prompt-ids 1,2
bad "$S" "unquoted prompt" 2 "unexpected argument 'world'" "$BIN" generate -m "$TINY" -p hello world
bad "$S" "--trace without --json" 2 "--trace needs --json" "$BIN" generate -m "$TINY" -p hi --trace
bad "$S" "bad token id list" 2 "--prompt-ids: 'x' is not an integer" "$BIN" generate -m "$TINY" --prompt-ids 1,x
bad "$S" "token id outside the vocabulary" 1 "prompt token id 999 is outside the vocabulary (0..395)" "$BIN" generate -m "$TINY" --prompt-ids 1,999
bad "$S" "prompt file missing" 1 "nope.txt: cannot open" "$BIN" generate -m "$TINY" --prompt-file "$tmp/nope.txt"
bad "$S" "compare mode outside the chat" 2 "--mode compare is a chat mode" "$BIN" generate -m "$TINY" -p hi --mode compare
bad "$S" "tokenize without text" 2 "give exactly one TEXT argument" "$BIN" tokenize -m "$TINY"
bad "$S" "tokenizer file that is not JSON" 1 "invalid JSON" "$BIN" tokenize --tokenizer "$TINY/model.safetensors" hi
HAVE_CHAT=1
"$BIN" --version | grep -q "^chat: not built" && HAVE_CHAT=0
[ $HAVE_CHAT = 1 ] && bad "$S" "chat with a stray argument" 2 "unexpected argument 'hello'" "$BIN" chat -m "$TINY" hello

# ---------------------------------------------------------------------------------------------
S="prompt"
python3 -c "print('word ' * 5000)" > "$tmp/long.txt"
bad "$S" "prompt longer than the model's context" 1 "exceed the model's context of 4096 positions" "$BIN" generate -m "$TINY" --prompt-file "$tmp/long.txt"
bad "$S" "prompt + new tokens longer than the context" 1 "max new tokens (4096) + 2 blocks of slack (64) exceed the model's context" "$BIN" generate -m "$TINY" -p hi -n 4096
bad "$S" "empty prompt" 1 "the prompt is empty" "$BIN" generate -m "$TINY" -p ""

# Invalid UTF-8 is not an error: it reaches the model as U+FFFD, like any other text.
out=$("$BIN" generate -m "$TINY" -p $'caf\xc3 \xff\xfe end' -n 32 2>"$tmp/err"); rc=$?
if [ $rc -ne 0 ]; then echo "FAIL: invalid UTF-8 prompt: exit $rc: $(cat "$tmp/err")"; fail=1; fi
row "$S" "prompt that is not valid UTF-8" "$BIN generate -m tests/fixtures/tiny/model -p \$'caf\\xc3 \\xff\\xfe end'" "$rc" \
    "the answer (invalid bytes are read as U+FFFD, one per maximal invalid sequence)"

# ---------------------------------------------------------------------------------------------
if [ $HAVE_CHAT = 0 ]; then
    echo "chat rows: skipped (built without the chat)"
else
S="chat"
printf 'hello \xff\xfe\xc3 there\n\xed\xa0\x80\xf4\x90\x80\x80\n/system \xff\n/threshold 2\n/frobnicate\n/load %s\n/quit\n' "$tmp/nope.json" \
    | "$BIN" chat --plain -m "$TINY" -n 32 --session "$tmp/s1.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] || ! grep -q "threshold" "$tmp/err" || ! grep -q "unknown command /frobnicate" "$tmp/err" \
   || ! python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$tmp/s1.json" 2>/dev/null; then
    echo "FAIL: invalid UTF-8 piped into chat --plain: exit $rc"; sed 's/^/  /' "$tmp/err"; fail=1
fi
row "$S" "invalid UTF-8, bad commands piped into \`chat --plain\`" "printf 'hello \\xff\\xfe...\\n/threshold 2\\n/frobnicate\\n' | $BIN chat --plain --session s.json" "$rc" \
    "answers; one \`error: ...\` line per bad command: $(grep -m1 threshold "$tmp/err")"

echo '{"messages": [' > "$tmp/corrupt.json"
bad "$S" "--resume of a corrupted session file" 1 "cannot resume" "$BIN" chat --plain -m "$TINY" --resume --session "$tmp/corrupt.json"
echo '{"messages": [{"role": "robot", "content": "x"}]}' > "$tmp/robot.json"
bad "$S" "--resume of a session with an unknown role" 1 "unknown message role \"robot\"" "$BIN" chat --plain -m "$TINY" --resume --session "$tmp/robot.json"

# A full disk while saving: ulimit -f makes write() fail (EFBIG) like ENOSPC would; the
# previous session file must stay as it was.
echo '{"messages": []}' > "$tmp/keep.json"
long=$(head -c 3000 /dev/zero | tr '\0' 'a')  # fits the context; the session file is > 3 KB
err=$( (trap '' XFSZ; ulimit -f 2; printf '%s\n' "$long" | exec "$BIN" chat --plain -m "$TINY" -n 32 --session "$tmp/keep.json") 2>&1 >/dev/null); rc=$?
if [ "$(cat "$tmp/keep.json")" != '{"messages": []}' ] || ! grep -q "could not save the conversation: .*write failed: File too large" <<<"$err" \
   || ls "$tmp"/keep.json.tmp.* >/dev/null 2>&1; then
    echo "FAIL: full disk on save: exit $rc: $err"; fail=1
fi
row "$S" "disk full while the session is saved (\`ulimit -f\`)" "chat --plain --session keep.json" "$rc" "$(tail -1 <<<"$err") (keep.json unchanged)"

# The same with a real full filesystem (ENOSPC), where a small tmpfs can be mounted (root).
mkdir -p "$tmp/small"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64k tmpfs "$tmp/small" 2>/dev/null; then
    echo '{"messages": []}' > "$tmp/small/s.json"
    head -c 60000 /dev/zero > "$tmp/small/fill" 2>/dev/null
    err=$(printf '%s\n' "$long" | "$BIN" chat --plain -m "$TINY" -n 32 --session "$tmp/small/s.json" 2>&1 >/dev/null); rc=$?
    if [ "$(cat "$tmp/small/s.json")" != '{"messages": []}' ] || ! grep -q "No space left on device" <<<"$err"; then
        echo "FAIL: ENOSPC on save: exit $rc: $err"; fail=1
    fi
    umount "$tmp/small"
    echo "full tmpfs (ENOSPC): checked: $err"
else
    echo "full tmpfs (ENOSPC): skipped (cannot mount a tmpfs here)"
fi

fi

# KV cache too large for the memory the process may use (RLIMIT_AS). A sanitizer build cannot
# start under ulimit -v (its shadow memory is terabytes of address space): skipped there (the
# probe runs without the sanitizer log settings, so its failure is not counted as a report).
m=$(model longctx); sed -i 's/"max_position_embeddings": 4096/"max_position_embeddings": 16777216/' "$m/config.json"
if env -u ASAN_OPTIONS -u LSAN_OPTIONS -u UBSAN_OPTIONS bash -c 'ulimit -v 900000; "$0" --help; exit $?' "$BIN" >/dev/null 2>&1; then
    err=$( (ulimit -v 900000; exec "$BIN" generate -m "$m" -p hi --mode ar -n 1048576) 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 1 ] || ! grep -q "a KV cache of 2097152 positions .* needs 1.0 GiB, but only" <<<"$err" || [ "$(wc -l <<<"$err")" -ne 1 ]; then
        echo "FAIL: KV cache too large: exit $rc: $err"; fail=1
    fi
    complete=1
    row "request" "a request whose KV cache cannot fit in memory (\`ulimit -v 900000\`)" "generate -m longctx -p hi --mode ar -n 1048576" "$rc" "$err"
else
    echo "KV cache over the memory limit: skipped (this binary cannot run under ulimit -v: a sanitizer build)"
fi

# ---------------------------------------------------------------------------------------------
[ $HAVE_CHAT = 0 ] && complete=0
if [ $fail -eq 0 ] && [ $complete -eq 0 ]; then
    echo "bad_inputs_test: all ${#rows[@]} inputs give a clear error (docs/bad-inputs.md not rewritten: a row was skipped)"
elif [ $fail -eq 0 ]; then
    doc="$SRC/docs/bad-inputs.md"
    mkdir -p "$SRC/docs"
    {
        echo "# Bad inputs and what the user sees"
        echo
        echo "Generated by \`tests/bad_inputs_test.sh\` (run by ctest), which checks every row through the real"
        echo "binary: one line on stderr, this exit code, never a crash. Exit codes: 0 success, 1 bad data or"
        echo "request (model files, prompt, memory), 2 bad command line. Paths are shortened; N stands for a"
        echo "number that depends on the machine. A full disk is also checked for real (ENOSPC on a full"
        echo "tmpfs, where the test may mount one): the message ends in \"No space left on device\" and the"
        echo "previous session file stays as it was."
        echo
        echo "| | input | command | exit | what the user sees |"
        echo "|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
    } > "$tmp/doc.md"
    if ! cmp -s "$tmp/doc.md" "$doc" 2>/dev/null; then cp "$tmp/doc.md" "$doc" 2>/dev/null || true; fi
    echo "bad_inputs_test: all ${#rows[@]} inputs give a clear error; table in docs/bad-inputs.md"
fi
exit $fail
