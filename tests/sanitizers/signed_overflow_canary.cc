// Overflows a signed int. Built only in the sanitizer build, where
// UndefinedBehaviorSanitizer (with -fno-sanitize-recover=all) must stop it:
// ubsan_canary proves UBSan is live and fatal, not only AddressSanitizer.
#include <climits>
#include <cstdio>

int main(int argc, char**) {
  volatile int big = INT_MAX;
  const int sum = big + argc;  // INT_MAX + 1
  std::printf("overflowed to %d without a report\n", sum);
  return 0;
}
