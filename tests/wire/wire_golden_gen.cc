// Writes the golden files: wire_golden_gen DIR writes DIR/<name>.bin and
// DIR/<name>.txtpb for every message of OldGoldenMessages(). They were
// committed in tests/wire/golden/ before the protocol changes of issue 9;
// wire_compat_test checks that this still reproduces them byte for byte.
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/wire/golden_messages.h"

namespace {

bool Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out) std::fprintf(stderr, "wire_golden_gen: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: wire_golden_gen DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (const auto& g : musafarm::wire::OldGoldenMessages()) {
    if (!Write(dir + "/" + g.name + ".bin", musafarm::wire::DeterministicBytes(*g.message)) ||
        !Write(dir + "/" + g.name + ".txtpb", musafarm::wire::GoldenText(*g.message))) {
      return 1;
    }
  }
  return 0;
}
