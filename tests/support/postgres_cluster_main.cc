// mf-test-postgres start|stop DIR: the ctest fixture that gives a whole test
// run one PostgreSQL cluster (tests/support/private_postgres.h).

#include <iostream>
#include <string>

#include "tests/support/private_postgres.h"

int main(int argc, char** argv) {
  using musafarm::test_support::PrivatePostgres;
  if (argc != 3) {
    std::cerr << "usage: mf-test-postgres start|stop DIR\n";
    return 2;
  }
  const std::string command = argv[1];
  const std::string dir = argv[2];
  if (command == "stop") {
    const std::string e = PrivatePostgres::StopAt(dir);
    if (!e.empty()) std::cerr << e << "\n";
    return e.empty() ? 0 : 1;
  }
  if (command != "start") {
    std::cerr << "mf-test-postgres: unknown command '" << command << "'\n";
    return 2;
  }
  (void)PrivatePostgres::StopAt(dir);  // what a killed run left behind
  PrivatePostgres pg;
  const std::string e = pg.Start(dir);
  if (!e.empty()) {
    std::cerr << "mf-test-postgres: " << e << "\n";
    pg.Stop();
    return 1;
  }
  std::cout << "PostgreSQL cluster in " << dir << "\n";
  pg.Release();
  return 0;
}
