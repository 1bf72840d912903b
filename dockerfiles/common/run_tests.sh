#!/usr/bin/env bash
# run_tests.sh - run torch_musa's unit and integration suites the way its dev image does.
#
# Usage: run_tests.sh [unit|integration|all]     (default: all)
#
# Writes stdout+stderr of each suite to /home/ut_output.txt and
# /home/integration_test_output.txt and its exit status to /home/ut_exit_code.txt and
# /home/integration_test_exit_code.txt (124: TEST_TIMEOUT was hit), and pytest's JUnit XML
# to /home/ut_junit.xml and /home/integration_test_junit.xml (through PYTEST_ADDOPTS, so
# torch_musa's own scripts write it too). Uses torch_musa's
# scripts/run_unittest.sh and scripts/run_integration_test.sh when the checkout has them,
# else `python -m pytest -v` on tests/unittest and tests/integration.
#
# Used twice: by dockerfile.dev at build time (no GPU there, so GPU tests fail or skip)
# and by the farm's test stage in a container started with the task's GPUs
# (MTHREADS_VISIBLE_DEVICES). A failing suite does not fail this script (the original
# image build's `|| true`): the farm's test stage declares the suites (`suites:` in
# pipelines/torch_musa.yaml) and its agent fails the task unless each suite's exit
# status is 0 and its output holds a passing pytest summary (agent/suite_verdict.h). Environment: TORCH_MUSA_DIR (default /home/torch_musa), RUN_TESTS
# (1 = run; anything else writes "not run"), TEST_TIMEOUT (default 3h), TORCH_MUSA_TAG
# (for messages only).
set -euo pipefail

which=${1:-all}
case "${which}" in unit|integration|all) ;; *)
  echo "run_tests.sh: unknown suite '${which}' (unit, integration or all)" >&2; exit 2 ;;
esac
dir=${TORCH_MUSA_DIR:-/home/torch_musa}
cd "${dir}"

run_suite() {
  local name=$1 out=$2 script=$3 tests=$4 rc=0
  local status_file="${out%_output.txt}_exit_code.txt" junit="${out%_output.txt}_junit.xml"
  if [ "${RUN_TESTS:-1}" != 1 ]; then
    echo "${name} tests not run (RUN_TESTS=${RUN_TESTS})" >"${out}"; echo skipped >"${status_file}"; return 0
  fi
  if [ -f "${script}" ]; then set -- bash "${script}"
  elif [ -d "${tests}" ]; then set -- python -m pytest -v "${tests}"
  else
    echo "no ${name} tests in torch_musa ${TORCH_MUSA_TAG:-}: neither ${script} nor ${tests}" >"${out}"
    echo missing >"${status_file}"; return 0
  fi
  echo "running ${name} tests (GPUs: ${MTHREADS_VISIBLE_DEVICES:-none}): $*"
  rm -f "${junit}"
  PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --junitxml=${junit}" \
    timeout --kill-after=5m "${TEST_TIMEOUT:-3h}" "$@" >"${out}" 2>&1 </dev/null || rc=$?
  echo "${rc}" >"${status_file}"
  echo "${name} tests: exit status ${rc}; last lines of ${out}:"
  tail -n 5 "${out}" || true
}

if [ "${which}" != integration ]; then
  run_suite unit /home/ut_output.txt scripts/run_unittest.sh tests/unittest
fi
if [ "${which}" != unit ]; then
  run_suite integration /home/integration_test_output.txt scripts/run_integration_test.sh tests/integration
fi
