#!/usr/bin/env bash
# The whole test suite under the sanitizers:
#   1. build-asan/: every target with -DFASTDLLM_SANITIZE=ON (AddressSanitizer + UBSan, leak
#      checking on) and the full ctest suite, script tests included (they run the sanitized
#      fastdllm binary);
#   2. build-tsan/: the unit tests and fastdllm with -DFASTDLLM_TSAN=ON (ThreadSanitizer),
#      running the threaded tests (names with UiState, Thread, Cancel, Concurrent, ChatService or
#      ForwardBatch) and the whole server test (tests/server_test.sh). OpenMP runs with
#      OMP_NUM_THREADS=1 there: Debian's libgomp is not built with TSan, so its own
#      synchronisation would be reported as races (false positives); the threads under test are
#      the std::threads of the chat (worker + UI) and the tokenizer's shared cache.
# Every sanitizer report is written to <build>/sanitizer-logs/ and any report fails the run,
# also one from a process whose exit status a test does not look at.
#
#   SANITIZE_ONLY=asan|tsan   one of the two
#   BUILD_JOBS=$(nproc)       compile jobs
set -euo pipefail
cd "$(dirname "$0")/.."
NCPU=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # (nproc obeys OMP_NUM_THREADS)
BUILD_JOBS=${BUILD_JOBS:-$NCPU}
ONLY=${SANITIZE_ONLY:-}
CT_JOBS=$NCPU
status=0

build() {  # dir, log, cmake options..., -- targets...
    local dir=$1; shift
    local opts=() targets=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    targets=("$@")
    mkdir -p "$dir"
    if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" "${opts[@]}" &&
           cmake --build "$dir" -j"$BUILD_JOBS" ${targets[@]+--target "${targets[@]}"}; } > "$dir/build.log" 2>&1; then
        tail -40 "$dir/build.log"; echo "sanitize.sh: build in $dir failed (log: $dir/build.log)" >&2; exit 1
    fi
}

reports() {  # dir: prints the reports, returns 1 when there are any
    local logs=$1/sanitizer-logs
    if compgen -G "$logs/*" > /dev/null; then
        for f in "$logs"/*; do echo "---- $f"; head -60 "$f"; done
        return 1
    fi
    return 0
}

if [ -z "$ONLY" ] || [ "$ONLY" = asan ]; then
    t0=$(date +%s)
    build build-asan -DFASTDLLM_SANITIZE=ON
    t1=$(date +%s)
    rm -rf build-asan/sanitizer-logs; mkdir -p build-asan/sanitizer-logs
    L=$PWD/build-asan/sanitizer-logs
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:exitcode=86:log_path=$L/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=86:log_path=$L/ubsan"
    export LSAN_OPTIONS="exitcode=86:log_path=$L/lsan"
    set +e
    (cd build-asan && ctest --output-on-failure -j"$CT_JOBS" --timeout 1200) > build-asan/ctest.log 2>&1
    rc=$?
    set -e
    t2=$(date +%s)
    summary=$(grep -E "tests passed|tests failed" build-asan/ctest.log | tail -1)
    echo "ASan+UBSan: $summary (build $((t1 - t0)) s, tests $((t2 - t1)) s)"
    if [ $rc -ne 0 ]; then grep -E "^\s*[0-9]+ - |Failed|\*\*\*" build-asan/ctest.log | tail -30; status=1; fi
    if ! reports build-asan; then echo "ASan+UBSan: sanitizer reports above" >&2; status=1
    else echo "ASan+UBSan: 0 sanitizer reports"; fi
    unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

if [ -z "$ONLY" ] || [ "$ONLY" = tsan ]; then
    # Kernels with a large mmap randomisation (vm.mmap_rnd_bits > 28) break TSan's memory map:
    # run it without address randomisation where setarch allows.
    NORAND=()
    if setarch "$(uname -m)" -R true 2>/dev/null; then NORAND=(setarch "$(uname -m)" -R); fi
    t0=$(date +%s)
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
    L=$PWD/build-tsan/sanitizer-logs
    rm -rf "$L"; mkdir -p "$L"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66:log_path=$L/tsan"
    ${NORAND[@]+"${NORAND[@]}"} bash -c "$(declare -f build); BUILD_JOBS=$BUILD_JOBS build build-tsan -DFASTDLLM_TSAN=ON -- fastdllm_tests fastdllm"
    t1=$(date +%s)
    set +e
    (cd build-tsan && ${NORAND[@]+"${NORAND[@]}"} ctest --output-on-failure -j"$CT_JOBS" --timeout 1200 \
        -R 'UiState|Thread|Cancel|Concurrent|ChatService|ForwardBatch|server_test') > build-tsan/ctest.log 2>&1
    rc=$?
    set -e
    t2=$(date +%s)
    summary=$(grep -E "tests passed|tests failed|No tests were found" build-tsan/ctest.log | tail -1)
    echo "TSan (OMP_NUM_THREADS=1): $summary (build $((t1 - t0)) s, tests $((t2 - t1)) s)"
    if [ $rc -ne 0 ]; then grep -E "^\s*[0-9]+ - |Failed|\*\*\*" build-tsan/ctest.log | tail -30; status=1; fi
    if ! reports build-tsan; then echo "TSan: sanitizer reports above" >&2; status=1
    else echo "TSan: 0 sanitizer reports"; fi
fi
exit $status
