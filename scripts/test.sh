#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run). Debian 12, as root:
#   ./scripts/test.sh
# 1. style gates: clang-format and cppcheck over every C file, clang-tidy over the non-test ones;
# 2. a normal build and every test (labels unit, e2e);
# 3. the unit tests again under valgrind --error-exitcode=1;
# 4. an ASan+UBSan build and every test again;
# 5. the libFuzzer harnesses (clang), each for IVMON_FUZZ_SECONDS (default 60), label fuzz.
# Any failure, including a test that cannot run, fails the script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root: the end-to-end tests start the fanotify agent" >&2
    exit 1
fi
scripts/deps.sh

echo "== style: clang-format, cppcheck"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null ||
                        find include src backends guest examples tests bench -name '*.[ch]')
clang-format --dry-run -Werror "${sources[@]}"
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
    --inline-suppr --std=c11 -D__GNUC__ -D__x86_64__ -DIVMON_GUEST_VERSION='"0"' -I include -I src \
    --suppress=missingIncludeSystem "${sources[@]}"

cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIVMON_VALGRIND=ON \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null

echo "== static analysis: clang-tidy (.clang-tidy) over the library, backends, agent and examples"
# Tests, fuzz harnesses and benchmarks are left out: they poke at internals on purpose.
mapfile -t tidy_sources < <(python3 - build/test/compile_commands.json "$root" <<'PY'
import json, sys
root = sys.argv[2] + "/"
dirs = tuple(root + d + "/" for d in ("src", "backends", "guest", "examples"))
print("\n".join(sorted({e["file"] for e in json.load(open(sys.argv[1]))
                        if e["file"].startswith(dirs)})))
PY
)
# WarningsAsErrors is '*': clang-tidy exits non-zero on any finding, and xargs passes that on.
if ! printf '%s\n' "${tidy_sources[@]}" |
        xargs -P"$jobs" -n8 clang-tidy -p build/test --quiet >build/test/clang-tidy.log 2>&1; then
    grep -v -e '^[0-9]* warnings\? generated' -e '^Suppressed [0-9]* warnings' \
        -e 'header-filter' -e 'system-headers' build/test/clang-tidy.log >&2
    echo "clang-tidy found problems (above; full log build/test/clang-tidy.log)" >&2
    exit 1
fi

echo "== build and test"
cmake --build build/test -j"$jobs"
ctest --test-dir build/test --output-on-failure -LE valgrind

echo "== unit tests under valgrind"
ctest --test-dir build/test --output-on-failure -L valgrind

echo "== ASan + UBSan build and test"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DIVMON_SANITIZE=ON -DIVMON_BUILD_BENCH=OFF >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -LE valgrind

echo "== fuzzing (clang, libFuzzer + ASan + UBSan), ${IVMON_FUZZ_SECONDS:-60} s per harness"
CC=clang cmake -S . -B build/fuzz -DIVMON_FUZZ=ON -DIVMON_BUILD_AGENT=OFF -DIVMON_BUILD_BENCH=OFF \
    -DIVMON_FUZZ_SECONDS="${IVMON_FUZZ_SECONDS:-60}" >/dev/null
cmake --build build/fuzz -j"$jobs"
ctest --test-dir build/fuzz --output-on-failure -L fuzz

echo "== all test stages passed"
