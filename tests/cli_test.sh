#!/usr/bin/env bash
# The CLI end to end: every fixture trace through `fastdllm generate --json`, tokenize, info,
# and the error paths (one line, non-zero exit).
set -u
BIN="$1"; SRC="$2"
FIX="$SRC/tests/fixtures"
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

# Every trace: tokens and nfe must match exactly.
python3 - "$BIN" "$FIX" <<'PY' || fail=1
import json, subprocess, sys
bin_, fix = sys.argv[1], sys.argv[2]
traces = json.load(open(f"{fix}/tiny/traces.json"))["traces"]
bad = 0
for i, t in enumerate(traces):
    args = [bin_, "generate", "-m", f"{fix}/tiny/model", "--prompt-ids", ",".join(map(str, t["prompt"])),
            "-n", str(t["max_new_tokens"]), "--mode", t["mode"], "--json", "--trace"]
    if t["mode"] == "diffusion":
        args += ["--block-size", str(t["block_size"]), "--sub-block-size", str(t["sub_block_size"]),
                 "--threshold", str(t["threshold"]), "--cache", "dual" if t["dual_cache"] else "prefix"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"trace {i}: exit {out.returncode}: {out.stderr.strip()}"); bad += 1; continue
    j = json.loads(out.stdout)
    if j["tokens"] != t["tokens"] or j["nfe"] != t["nfe"]:
        print(f"trace {i}: got tokens {j['tokens']} nfe {j['nfe']}, want {t['tokens']} nfe {t['nfe']}"); bad += 1
    if "steps" in t and [s["kind"] for s in j["steps"]] != [s["kind"] for s in t["steps"]]:
        print(f"trace {i}: step kinds differ"); bad += 1
print(f"cli traces: {len(traces) - bad} of {len(traces)} reproduced")
sys.exit(1 if bad else 0)
PY

out=$("$BIN" tokenize --tokenizer "$FIX/tokenizer-qwen2.5/tokenizer.json" --json "Hello world")
check "tokenize --json" '[ "$out" = "{\"ids\":[9707,1879]}" ]'
out=$("$BIN" tokenize -m "$FIX/tiny/model" "<|im_start|>user")
check "tokenize ids list" '[[ "$out" =~ ^381(,[0-9]+)+$ ]]'
out=$(printf 'What is 5 + 7?' | "$BIN" generate -m "$SRC/assets/models/demo-dllm" --chat -f - 2>/dev/null)
check "prompt from standard input (-f -)" '[ "$out" = "5 + 7 = 12." ]'
out=$("$BIN" --version)
check "--version" 'grep -qE "^fastdllm [0-9]+\.[0-9]+\.[0-9]+$" <<<"$out" && grep -q "^kernels: " <<<"$out"'
out=$(FASTDLLM_KERNELS=portable "$BIN" --version)
check "--version names a forced kernel path" 'grep -q "^kernels: portable" <<<"$out"'
out=$("$BIN" info -m "$FIX/tiny/model")
check "info" 'grep -q "block-diffusion Qwen2, 2 layers" <<<"$out"'
out=$("$BIN" info -m "$FIX/tiny/model" --dtype int4 --json)
check "info --dtype int4" 'python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert j[\"loaded_dtype\"] == \"int4\" and 0 < j[\"loaded_bytes\"] < j[\"file_bytes\"] / 2, j" "$out"'
out=$("$BIN" generate -m "$FIX/tiny/model" -p "Hello" --chat -n 32 2>/dev/null)
check "generate streams text" '[ -n "$out" ]'
# --warmup changes timings only: same tokens and passes, and the JSON says it was used.
cold=$("$BIN" generate -m "$FIX/tiny/model" -p "Hello" --chat -n 32 --json)
warm=$("$BIN" generate -m "$FIX/tiny/model" -p "Hello" --chat -n 32 --json --warmup)
pick='import json,sys; d=json.load(sys.stdin); print(json.dumps([d["tokens"], d["nfe"]]), d["warmup"])'
check "warmup keeps the result" '[ "$(python3 -c "$pick" <<<"$cold")" = "$(python3 -c "$pick" <<<"$warm" | sed "s/ True$/ False/")" ] && python3 -c "$pick" <<<"$warm" | grep -q " True$"'

# Errors: one line on stderr, non-zero exit, never a crash.
expect_error() {  # name, expected exit code, expected text, command...
    local name="$1" code="$2" text="$3"; shift 3
    local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -qF -- "$text" <<<"$err" || [ "$(wc -l <<<"$err")" -ne 1 ]; then
        echo "FAIL: $name: exit $rc (want $code), stderr: $err"; fail=1
    fi
}
expect_error "missing model" 1 "no such model folder" "$BIN" generate -m /nonexistent -p hi
expect_error "an unknown --dtype" 2 "expected auto, f32, bf16, int8 or int4" "$BIN" generate -p hi --dtype int3
expect_error "bad threshold" 2 "--threshold: 2 is out of range" "$BIN" generate -m "$FIX/tiny/model" -p hi --threshold 2
expect_error "bad cache" 2 "--cache: expected none, prefix, dual or dual-overlap" "$BIN" generate -m "$FIX/tiny/model" -p hi --cache fast
expect_error "unknown flag" 2 "unknown option --frobnicate" "$BIN" generate --frobnicate
expect_error "sub-block" 2 "must divide the block size" "$BIN" generate -m "$FIX/tiny/model" -p hi --sub-block-size 5
expect_error "no prompt" 2 "give exactly one of" "$BIN" generate -m "$FIX/tiny/model"
expect_error "bad ids" 2 "--prompt-ids: 'x' is not an integer" "$BIN" generate -m "$FIX/tiny/model" --prompt-ids 1,x
expect_error "id outside vocab" 1 "outside the vocabulary" "$BIN" generate -m "$FIX/tiny/model" --prompt-ids 1,999
expect_error "unknown command" 2 "unknown command" "$BIN" frobnicate
expect_error "short max-new" 1 "must be at least the block size" "$BIN" generate -m "$FIX/tiny/model" -p hi -n 8 --mode diffusion
# Compare mode in the plain REPL on the shipped pair: the AR baseline is found beside the chat
# model, its loading is reported as started and as finished, and both answers and the speedup follow,
# with the best case this machine's pass costs allow beside it: timed on the first compare and
# stored in the data folder (a fresh one here), then read back by the next process.
if "$BIN" --version | grep -q "^chat: not built"; then
    expect_error "chat without the UI build" 1 "built without the chat" "$BIN" chat --plain
else
    data=$(mktemp -d)
    out=$(echo "Spell the word garden." | XDG_DATA_HOME="$data" "$BIN" chat --plain --mode compare -m "$SRC/assets/models/demo-dllm" 2>&1)
    check "compare: loading reported" 'grep -q "^loading the AR baseline .*demo-ar" <<<"$out"'
    check "compare: loaded reported" 'grep -qE "^loaded the AR baseline demo-ar in [0-9.]+ s$" <<<"$out"'
    check "compare: both answers" '[ "$(grep -c "^g-a-r-d-e-n$" <<<"$out")" = 2 ]'
    check "compare: speedup line" 'grep -qE "^\[speedup [0-9.]+x \(best case here [0-9.]+x\): diffusion .* vs AR .*prompt included\]$" <<<"$out"'
    check "compare: pass costs stored" 'grep -q "demo-dllm .*bf16 .* B=32 S=8" "$data/fastdllm/pass_costs.json"'
    best=$(grep -o "best case here [0-9.]*x" <<<"$out")
    out=$(echo "Spell the word garden." | XDG_DATA_HOME="$data" "$BIN" chat --plain --mode compare -m "$SRC/assets/models/demo-dllm" 2>&1)
    check "compare: the stored best case reused" '[ -n "$best" ] && grep -q "$best" <<<"$out"'
    out=$(echo "Spell the word garden." | XDG_DATA_HOME="$data" "$BIN" chat --plain --mode compare --cache dual-overlap --dtype int4 -m "$SRC/assets/models/demo-dllm" 2>&1)
    check "compare: int4, dual-overlap" 'grep -qE "^\[speedup [0-9.]+x \(best case here [0-9.]+x\): diffusion" <<<"$out" && grep -q "int4 .* B=32 S=8" "$data/fastdllm/pass_costs.json"'
    rm -rf "$data"
fi

tmp=$(mktemp -d); cp -r "$FIX/tiny/model" "$tmp/m"; chmod -R u+w "$tmp/m"
head -c 1000 "$FIX/tiny/model/model.safetensors" > "$tmp/m/model.safetensors"
expect_error "truncated weights" 1 "model.safetensors" "$BIN" generate -m "$tmp/m" -p hi
echo '{"architectures": ["GPT2LMHeadModel"]}' > "$tmp/m/config.json"
expect_error "unknown architecture" 1 "unknown architecture" "$BIN" info -m "$tmp/m"
rm -rf "$tmp"

if [ $fail -eq 0 ]; then echo "cli_test: all passed"; fi
exit $fail
