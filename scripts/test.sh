#!/usr/bin/env bash
# Sets everything up (packages, build) and runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
cd ..
# Hardening: the whole suite again under ASan+UBSan, the threaded tests under TSan, then every
# fuzzer of tests/fuzz/ for FUZZ_SECONDS (about 20 minutes on 2 cores in all).
# FASTDLLM_HARDENING=0 skips them.
if [ "${FASTDLLM_HARDENING:-1}" != 0 ]; then
    bash scripts/sanitize.sh
    FUZZ_SECONDS="${FUZZ_SECONDS:-60}" bash scripts/fuzz.sh
fi
