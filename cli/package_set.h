#pragma once

// MUSA package sets (issue 18): one combination of MUSA toolkit, muDNN, MCCL and
// math library versions, named, like upstream's docker/common/release/version.txt,
// with where each package is and its sha256. `musafarm submit --package-set FILE`
// (or `--package-set qy2=FILE1,ph1=FILE2`, one per GPU architecture) reads it:
//
//   name: rc3.1.0-qy2
//   packages:
//     - {name: musa_toolkits, version: rc3.1.0, secret: MUSA_TOOLKITS_URL,
//        url: "https://...", sha256: "<64 hex digits>"}
//     - {name: mudnn, version: rc2.7.0, secret: MUDNN_URL, url: ..., sha256: ...}
//
// Each url becomes the job secret its entry names (so the file is the operator's,
// kept like any credential, never in the repository); the set's name becomes the
// param `package_set` (the job shows it) and its digest the param
// `download_cache_key`, which the Dockerfiles' cache keys on instead of a
// free-text key: it changes exactly when a package's content (sha256), version or
// the set's name changes, never with a URL alone (a mirror, a new token).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::cli {

struct PackageSet {
  struct Package {
    std::string name;     // e.g. "musa_toolkits"
    std::string version;  // e.g. "rc3.1.0"
    std::string secret;   // the job secret the URL fills, e.g. "MUSA_TOOLKITS_URL"
    std::string url;      // secret
    std::string sha256;   // 64 lower-case hex digits
  };
  std::string name;
  std::vector<Package> packages;  // in file order
  // "sha256:" + hex of the set without its URLs (PackageSetDigest).
  std::string digest;
};

// Parses a package set file's text. Errors (InvalidArgument) read
// "FILE: packages[1].sha256: ..." and never quote a URL.
absl::StatusOr<PackageSet> ParsePackageSet(absl::string_view yaml, const std::string& file);
// Reads and parses `path` (at most 64 KiB).
absl::StatusOr<PackageSet> ReadPackageSet(const std::string& path);

// The SHA-256 of "name\n" and, sorted by package name, "name version sha256\n"
// lines: the same for the same contents whatever the URLs or file order.
std::string PackageSetDigest(const PackageSet& set);

}  // namespace musafarm::cli
