#pragma once

// A fuzzer's own checks: a broken property aborts with what broke, which
// libFuzzer (and the replay driver's ctest) reports as a crash with its input.

#include <cstdio>
#include <cstdlib>

#define MF_FUZZ_CHECK(cond, ...)                                        \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                \
      std::fprintf(stderr, "\n");                                       \
      std::abort();                                                     \
    }                                                                   \
  } while (0)
