// Writes one byte past a heap block. Built only in the sanitizer build (build type
// Asan), where AddressSanitizer must stop it with a report: the WILL_FAIL test
// asan_canary and its twin asan_canary_report (which checks the report itself)
// prove that the build the CI runs the suite in is really instrumented.
#include <cstdio>
#include <cstdlib>

int main(int argc, char**) {
  char* block = static_cast<char*>(std::malloc(8));
  volatile int index = 7 + argc;  // 8 (argc is 1): one past the end, unknown to the optimizer
  block[index] = 1;
  std::printf("wrote past the end of a heap block without a report\n");
  std::free(block);
  return 0;
}
