#!/usr/bin/env bash
# Time llama.cpp on this machine, in the same run as fastdllm's own benchmarks, on random-weight
# GGUF files in the published Qwen2.5 shapes. See usage() below.
set -euo pipefail
cd "$(dirname "$0")/.."

NLC_VERSION=${NODE_LLAMA_CPP_VERSION:-3.22.1}  # node-llama-cpp, pinned so reruns time the same llama.cpp
PREFIX=bench/.llama_cpp                         # npm install location (git-ignored, bench/.gitignore)
GGUF_DIR=${GGUF_DIR:-/tmp/fastdllm-gguf}
THREADS=2
REPS=5
DECODE=128
PROMPT=512
CSV=bench/results/llama_cpp_reference.csv
DEFAULT_MODELS="qwen2.5-0.5b:f32 qwen2.5-0.5b:f16 qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_0 qwen2.5-1.5b:f32 qwen2.5-1.5b:f16 qwen2.5-1.5b:q8_0 qwen2.5-1.5b:q4_0"

usage() {
  cat <<EOF
usage: bench/llama_cpp_reference.sh [options] [SHAPE:DTYPE ...]

Times llama.cpp (the prebuilt CPU binaries of the npm package node-llama-cpp $NLC_VERSION, run
through its JS API by bench/llama_cpp_reference.mjs) on random-weight GGUF files that
bench/make_gguf.py writes in the published shapes: the weights \`fastdllm bench --shape SHAPE\`
builds in memory (make_gguf.py --weights engine), quantised as llama.cpp's reference quantisers do.

  SHAPE: qwen2.5-0.5b | qwen2.5-1.5b      DTYPE: f32 | f16 | q8_0 | q4_0
  default: $DEFAULT_MODELS

For each model it measures, after an untimed warm-up, the median over --reps repetitions of
  decode: tokens/s generating --decode tokens one forward pass each (greedy) after a 16-token prompt
  prompt: tokens/s of one batch of --prompt tokens
with the model read into RAM (no mmap) and the given thread count. The whole run with the
defaults should take roughly 10-30 minutes on 2 cores (an estimate), most of it the 1.5B rows
and writing the GGUF files the first time. Run it on an otherwise idle machine: with a busy
core, llama.cpp's threads wait for each other and the figures fall apart.

What it does:
  1. if $PREFIX/node_modules/node-llama-cpp is missing or not version $NLC_VERSION:
     npm install node-llama-cpp@$NLC_VERSION and @node-llama-cpp/linux-x64@$NLC_VERSION there
     (needs node >= 20, npm and the npm registry; Linux x86-64 only; install scripts are skipped
     and llama.cpp is never built from source: only the prebuilt binaries are used)
  2. writes each missing GGUF file to the GGUF folder (python3 with numpy; 0.5B: 2.0 / 1.0 /
     0.53 / 0.35 GB, 1.5B: 6.2 / 3.1 / 1.65 / 1.0 GB for f32 / f16 / q8_0 / q4_0; files already
     there are reused)
  3. runs bench/llama_cpp_reference.mjs on each, appending one row per model to the CSV
     (the CSV is started afresh by each run) and saving llama.cpp's log next to the GGUF files
  4. prints a markdown table of this run's rows

options:
  --gguf-dir DIR   where the GGUF files and logs go (default: $GGUF_DIR; env GGUF_DIR)
  --threads N      llama.cpp threads (default: $THREADS)
  --reps N         timed repetitions per measurement, median reported (default: $REPS)
  --decode N       tokens generated per decode repetition (default: $DECODE)
  --prompt N       prompt batch length (default: $PROMPT)
  --csv FILE       the CSV to write (default: $CSV)
  --install-only   install node-llama-cpp and stop
  -h, --help       this text
env: NODE_LLAMA_CPP_VERSION (default $NLC_VERSION), GGUF_DIR
EOF
}

die() { echo "llama_cpp_reference.sh: $*" >&2; exit 1; }

INSTALL_ONLY=0
MODELS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --gguf-dir) GGUF_DIR=${2:?--gguf-dir needs a folder}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a number}; shift 2 ;;
    --decode) DECODE=${2:?--decode needs a number}; shift 2 ;;
    --prompt) PROMPT=${2:?--prompt needs a number}; shift 2 ;;
    --csv) CSV=${2:?--csv needs a file}; shift 2 ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
[ ${#MODELS[@]} -eq 0 ] && read -r -a MODELS <<<"$DEFAULT_MODELS"
for m in "${MODELS[@]}"; do
  case "$m" in
    qwen2.5-0.5b:f32|qwen2.5-0.5b:f16|qwen2.5-0.5b:q8_0|qwen2.5-0.5b:q4_0) ;;
    qwen2.5-1.5b:f32|qwen2.5-1.5b:f16|qwen2.5-1.5b:q8_0|qwen2.5-1.5b:q4_0) ;;
    *) die "unknown model '$m': expected SHAPE:DTYPE, e.g. qwen2.5-0.5b:f16 (see --help)" ;;
  esac
done

# ---- 1. node-llama-cpp ----
command -v node >/dev/null || die "node is not installed (Node.js >= 20 is needed; Debian: apt-get install nodejs npm, if its version is >= 20)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: node-llama-cpp $NLC_VERSION needs Node.js >= 20"
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "only Linux x86-64 is set up here (the @node-llama-cpp/linux-x64 binaries)"

installed=$(node -p "try { require('./$PREFIX/node_modules/node-llama-cpp/package.json').version } catch { '' }")
if [ "$installed" != "$NLC_VERSION" ]; then
  command -v npm >/dev/null || die "npm is not installed (needed once, to install node-llama-cpp into $PREFIX; Debian: apt-get install npm)"
  echo "installing node-llama-cpp $NLC_VERSION into $PREFIX (prebuilt binaries, no source build)..."
  mkdir -p "$PREFIX"
  [ -f "$PREFIX/package.json" ] || echo '{ "private": true, "description": "node-llama-cpp for bench/llama_cpp_reference.mjs" }' > "$PREFIX/package.json"
  # --omit=optional: node-llama-cpp lists every platform's binaries (CUDA, Vulkan, macOS, ...) as
  # optional dependencies; only the plain Linux x64 CPU package is wanted, so it is named.
  # --ignore-scripts: the postinstall step may try to download and build llama.cpp; the JS side
  # uses the prebuilt binaries only (getLlama({build: "never"})).
  npm install --prefix "$PREFIX" --no-audit --no-fund --omit=optional --ignore-scripts \
      "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" \
    || die "npm install failed (is the npm registry reachable? see the npm output above)"
fi
[ "$INSTALL_ONLY" = 1 ] && { echo "node-llama-cpp $NLC_VERSION is in $PREFIX"; exit 0; }

# ---- 2. GGUF files ----
# The engine's own random weights (make_gguf.py --weights engine) need numpy: the first python3
# that has it (Debian's python3-numpy is for /usr/bin/python3).
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import numpy" 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || die "no python3 with numpy (bench/make_gguf.py --weights engine writes the GGUF files; Debian: apt-get install python3-numpy)"
mkdir -p "$GGUF_DIR"
gguf_of() { echo "$GGUF_DIR/${1%%:*}-${1##*:}-engine.gguf"; }
for m in "${MODELS[@]}"; do
  f=$(gguf_of "$m")
  [ -f "$f" ] || "$PY" bench/make_gguf.py --weights engine --shape "${m%%:*}" --dtype "${m##*:}" -o "$f"
done

# ---- 3. timing ----
mkdir -p "$(dirname "$CSV")"
rm -f "$CSV"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
for m in "${MODELS[@]}"; do
  f=$(gguf_of "$m")
  echo
  echo "== llama.cpp: ${m%%:*} ${m##*:} ($f) =="
  node bench/llama_cpp_reference.mjs --prefix "$PREFIX" --model "$f" --shape "${m%%:*}" --dtype "${m##*:}" \
      --threads "$THREADS" --reps "$REPS" --decode "$DECODE" --prompt "$PROMPT" \
      --csv "$CSV" --log "${f%.gguf}.llama_cpp.log" \
    || { echo "FAILED: $m (llama.cpp log: ${f%.gguf}.llama_cpp.log)" >&2; failed=$((failed + 1)); }
done

# ---- 4. table ----
echo
echo "## llama.cpp reference ($THREADS threads, median of $REPS; load average at end: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| model | dtype | file GB | decode tok/s | prompt tok/s ($PROMPT in one batch) | ggml CPU variant | flash attn | llama.cpp (node-llama-cpp) |"
echo "|---|---|---:|---:|---:|---|---|---|"
if [ -f "$CSV" ]; then
  # CSV columns: shape,dtype,file_gb,threads,decode_tok_s,prompt_tok_s,decode_tokens,prompt_tokens,
  #              reps,node_llama_cpp,llama_cpp,cpu_variant,flash_attn
  tail -n +2 "$CSV" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s (%s) |\n", $1, $2, $3, $5, $6, $12, $13, $11, $10 }'
fi
echo
echo "CSV: $CSV"
[ "$failed" -eq 0 ] || die "$failed model(s) failed"
