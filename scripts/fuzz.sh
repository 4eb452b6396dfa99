#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang++, ASan+UBSan) in build-fuzz/ and runs each
# for FUZZ_SECONDS (default 60), starting from its seed corpus tests/fuzz/corpus/<name>/.
# Prints the executions each reached and writes the table to bench/results/fuzz.md.
# With FUZZ_RUNS each fuzzer runs to that many executions instead (the long run of
# docs/testing.md: FUZZ_RUNS=1000000 FUZZ_JOBS=1 FUZZ_DIR=build-fuzz-long); its table stays in
# the build folder.
# Exits non-zero when any fuzzer finds a crash, a leak, a timeout or an out-of-memory: the input
# is kept in build-fuzz/artifacts/<name>/; replay it with build-fuzz/tests/fuzz/fuzz_<name> FILE,
# then add it to tests/fuzz/regressions/<name>/ (tests/test_fuzz_regressions.cpp runs them all).
#
#   FUZZ_SECONDS=60      seconds per fuzzer (with FUZZ_RUNS: a time limit, unset for none)
#   FUZZ_RUNS=N          executions per fuzzer
#   FUZZ_DIR=build-fuzz  build folder (its corpus/, artifacts/ and logs/ too)
#   FUZZ_BUILD=0         run the fuzzers already built there
#   FUZZ_JOBS=$(nproc)   fuzzers run at once (each is one process, one core)
#   FUZZ_ONLY="config session"   run only these
#   BUILD_JOBS=$(nproc)  compile jobs
set -euo pipefail
cd "$(dirname "$0")/.."
NCPU=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # (nproc obeys OMP_NUM_THREADS, set to 1 below)
RUNS=${FUZZ_RUNS:-}
if [ -n "$RUNS" ]; then SECS=${FUZZ_SECONDS:-0}; else SECS=${FUZZ_SECONDS:-60}; fi
JOBS=${FUZZ_JOBS:-$NCPU}
BUILD_JOBS=${BUILD_JOBS:-$NCPU}
B=${FUZZ_DIR:-build-fuzz}
ALL=(safetensors index config tokenizer_json tokenize session args chat_input api_request)
NAMES=(${FUZZ_ONLY:-${ALL[@]}})
CXX_BIN=${FUZZ_CXX:-clang++}
command -v "$CXX_BIN" >/dev/null || { echo "fuzz.sh: $CXX_BIN not found (scripts/install-deps.sh installs clang)" >&2; exit 1; }

t0=$(date +%s)
mkdir -p $B
if [ "${FUZZ_BUILD:-1}" = 0 ]; then
    for n in "${NAMES[@]}"; do [ -x "$B/tests/fuzz/fuzz_$n" ] || { echo "fuzz.sh: $B/tests/fuzz/fuzz_$n is not built" >&2; exit 1; }; done
elif ! { cmake -S . -B $B -DCMAKE_CXX_COMPILER="$CXX_BIN" -DFASTDLLM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" && \
       cmake --build $B --target fuzzers -j"$BUILD_JOBS"; } > $B/build.log 2>&1; then
    tail -40 $B/build.log; echo "fuzz.sh: build failed (full log: $B/build.log)" >&2; exit 1
fi
t1=$(date +%s)
if [ -n "$RUNS" ]; then LIMIT=(-runs="$RUNS" -max_total_time="$SECS"); what_limit="$RUNS executions"
else LIMIT=(-max_total_time="$SECS"); what_limit="${SECS} s"; fi
echo "fuzz.sh: built ${#ALL[@]} fuzzers in $((t1 - t0)) s; running ${#NAMES[@]} for $what_limit each, $JOBS at a time"

export FUZZ_TMPDIR="$PWD/$B/tmp"
rm -rf "$FUZZ_TMPDIR"; mkdir -p "$FUZZ_TMPDIR"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

run_one() {
    local name=$1
    local corpus=$B/corpus/$name art=$B/artifacts/$name/
    mkdir -p "$corpus" "$art"
    cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    # -rss_limit_mb: the Qwen tokenizer alone takes ~0.5 GB under ASan.
    local dict=()
    case $name in
        safetensors|index|config|tokenizer_json|session) dict=(-dict=tests/fuzz/json.dict) ;;
        api_request) dict=(-dict=tests/fuzz/api_request.dict) ;;
    esac
    local start; start=$(date +%s)
    echo "$(ls "$corpus" | wc -l)" > "$B/logs/$name.seeds"
    "$B/tests/fuzz/fuzz_$name" "${LIMIT[@]}" -timeout=30 -rss_limit_mb=3072 -max_len=8192 \
        ${dict[@]+"${dict[@]}"} -print_final_stats=1 -artifact_prefix="$art" "$corpus" > "$B/logs/$name.log" 2>&1
    local rc=$?
    echo $(($(date +%s) - start)) > "$B/logs/$name.secs"
    return $rc
}

mkdir -p $B/logs
rm -f $B/logs/*.rc
for n in "${NAMES[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    ( if run_one "$n"; then echo 0; else echo $?; fi > "$B/logs/$n.rc" ) &
done
wait
declare -A rc
for n in "${NAMES[@]}"; do rc[$n]=$(cat "$B/logs/$n.rc" 2>/dev/null || echo 99); done

declare -A what=(
    [safetensors]="SafeTensors::parse (8-byte length, JSON header, offsets)"
    [index]="model.safetensors.index.json via SafeTensors::open_model_dir"
    [config]="ModelConfig::parse (config.json)"
    [tokenizer_json]="Tokenizer::from_file / from_model_dir (tokenizer.json, added_tokens.json, tokenizer_config.json)"
    [tokenize]="Tokenizer::encode/decode, StreamDetokenizer (tiny + Qwen2.5) on arbitrary bytes"
    [session]="json::parse + ChatSession::from_json/to_json/prompt_ids"
    [args]="cli::ArgParser + add_decode_flags + parse_int/float/u64/id_list"
    [chat_input]="ui parse_command/apply_setting + UTF-8 text helpers"
    [api_request]="server parse_api_request (chat + completions) + response objects + StopStrings"
)
failed=0
mkdir -p bench/results
{
    echo "# Fuzzing"
    echo
    echo "\`scripts/fuzz.sh\` (libFuzzer, clang++ -fsanitize=fuzzer,address,undefined), $what_limit per fuzzer,"
    echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $NCPU cores, $JOBS at a time."
    echo "Seeds: \`tests/fuzz/corpus/<name>/\`; corpus: files at the end (new ones)."
    echo
    echo "| fuzzer | target | executions | time (s) | exec/s | corpus (new) | coverage | result |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
} > $B/fuzz.md
for n in "${NAMES[@]}"; do
    log=$B/logs/$n.log
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    [ -n "$runs" ] || runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1 || true)
    [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
    corp=$(ls "$B/corpus/$n" | wc -l)
    seeds=$(cat "$B/logs/$n.seeds" 2>/dev/null || echo "$corp")
    secs=$(cat "$B/logs/$n.secs" 2>/dev/null || echo '?')
    if [ "${rc[$n]}" -eq 0 ]; then res="ok"
    else
        failed=1
        art=$(ls "$B/artifacts/$n/" 2>/dev/null | head -1)
        res="**FAILED** (exit ${rc[$n]}: $(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|runtime error: .*|property failed: .*|ERROR: libFuzzer: [a-z-]+' "$log" | head -1) ${art:+artifact $art})"
    fi
    printf 'fuzz_%-15s %10s executions %6s s %6s exec/s  corpus %5s (+%s)  %s\n' "$n" "${runs:-?}" "$secs" "${speed:-?}" "$corp" "$((corp - seeds))" "$res"
    echo "| fuzz_$n | ${what[$n]} | ${runs:-?} | $secs | ${speed:-?} | $corp ($((corp - seeds))) | ${cov:-?} | $res |" >> $B/fuzz.md
done
t2=$(date +%s)
echo >> $B/fuzz.md
echo "Build $((t1 - t0)) s, fuzzing $((t2 - t1)) s." >> $B/fuzz.md
table=$B/fuzz.md
if [ -z "$RUNS" ]; then cp $B/fuzz.md bench/results/fuzz.md; table=bench/results/fuzz.md; fi
rm -rf "$FUZZ_TMPDIR"
echo "fuzz.sh: table in $table; logs in $B/logs/ (build $((t1 - t0)) s, fuzzing $((t2 - t1)) s)"
if [ $failed -ne 0 ]; then
    echo "fuzz.sh: a fuzzer failed; the input is in $B/artifacts/<name>/ (see the log above)" >&2
    for n in "${NAMES[@]}"; do [ "${rc[$n]}" -eq 0 ] || { echo "---- $n"; grep -v '^#' "$B/logs/$n.log" | tail -40; }; done
    exit 1
fi
