#!/usr/bin/env bash
# `npm test`: install test dependencies, build, run every mocha suite under dist/test, the kernel
# client suite in a QEMU guest included (HANFS_TEST_KERNEL=0 leaves it out), print mocha's summary
# and a closing "N passed, N failed" line; exit non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh

echo "== build"
# (dist/ is not wiped: other processes may be running from it; tsc overwrites what it emits)
# tsc exits non-zero on type errors but still emits; a type error is a failure of the run
tsc_status=0
npx tsc -p . || tsc_status=$?

specs=()
while IFS= read -r f; do specs+=("$f"); done < <(find dist/test -name '*.test.js' | sort)
if [ "${HANFS_TEST_KERNEL:-1}" = "0" ]; then
  filtered=()
  for f in "${specs[@]}"; do case "$f" in dist/test/kernel/*) ;; *) filtered+=("$f") ;; esac; done
  specs=("${filtered[@]}")
fi
if [ "${#specs[@]}" -eq 0 ]; then
  echo "no test files under dist/test" >&2
  exit 1
fi

echo "== mocha (${#specs[@]} files)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mocha_status=0
npx mocha --timeout "${HANFS_TEST_TIMEOUT_MS:-300000}" --reporter spec --no-colors --exit "${specs[@]}" 2>&1 | tee "$log" || mocha_status=${PIPESTATUS[0]}

plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
count() { printf '%s\n' "$plain" | grep -Eo "^ *[0-9]+ $1" | tail -1 | grep -Eo '[0-9]+' || echo 0; }
passed=$(count passing)
failed=$(count failing)
pending=$(count pending)
if [ "$tsc_status" -ne 0 ]; then
  echo "tsc reported type errors (exit $tsc_status)"
  failed=$((failed + 1))
fi
if [ "$mocha_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed, ${pending} skipped"
[ "$failed" -eq 0 ] && [ "$mocha_status" -eq 0 ] && [ "$tsc_status" -eq 0 ]
