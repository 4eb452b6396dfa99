#!/usr/bin/env bash
# Installs the Debian 12 packages fastdllm needs to build, test, run and train.
# Idempotent: packages already present are skipped by apt. Runs as root or through sudo.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev libopenblas0-openmp   # GEMMs (OpenMP build: shares the engine's thread pool)
  nlohmann-json3-dev                           # config.json, tokenizer.json, safetensors headers, --json output
  libncurses-dev                               # the TUI (wide-character ncursesw)
  libreadline-dev                              # line editing + history in the TUI and plain REPL
  libcpp-httplib-dev                           # fastdllm serve: the HTTP server
  libcurl4-openssl-dev libssl-dev              # fastdllm pull: HTTPS downloads (libcurl), SHA-256 checks (libcrypto)
  curl                                         # tests of the server with a client nobody here wrote
  libpcre2-dev                                 # the tokenizer's own split regex
  libutf8proc-dev                              # NFC normalisation
  libgtest-dev libgmock-dev                    # unit tests
  libbenchmark-dev                             # micro-benchmarks
  tmux                                         # end-to-end TUI test
  chromium                                     # end-to-end test of the server's web page (headless)
  clang libclang-rt-14-dev libomp-dev llvm     # scripts/fuzz.sh: libFuzzer, clang's OpenMP, llvm-symbolizer
  gnuplot-nox                                  # bench/: the speed-vs-threshold plot
  python3 python3-torch python3-numpy python3-regex  # train/ (the conversion recipe) on CPU
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the server's tests with the official openai package; a Node.js installed
# another way (with its own npm) is kept as it is.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
