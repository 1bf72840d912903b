#pragma once

// A fresh directory under $TMPDIR (or /tmp) for one benchmark, removed with
// everything in it; the benchmark is skipped when it cannot be made.
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "benchmark/benchmark.h"

namespace musafarm::bench {

class TempDir {
 public:
  TempDir(benchmark::State& state, const std::string& prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      state.SkipWithError(("mkdtemp " + tmpl + " failed").c_str());
      return;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace musafarm::bench
