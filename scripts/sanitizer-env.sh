# Sourced by scripts/asan-test.sh (and by hand before running build-asan/ binaries):
# how the sanitizer runtimes of the Asan build behave. Every process the tests
# spawn inherits these.
#   abort_on_error=0, exitcode: a report ends the process with exit 1, not a core dump.
#   detect_leaks=1: LeakSanitizer at exit, with the suppressions in
#     tests/sanitizers/lsan.supp (third-party frames only; see the file).
#   print_stacktrace=1: UBSan reports carry the stack.
#   handle_abort=1: an MF_CHECK abort prints where it came from.
_mf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:handle_abort=1:detect_stack_use_after_return=0:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$_mf_root/tests/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-14 || true)}
unset _mf_root
