#include "cli/package_set.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/env_name.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::cli {
namespace {

constexpr size_t kMaxFileBytes = 64 << 10;
constexpr size_t kMaxPackages = 32;

absl::Status Bad(const std::string& file, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", field, ": ", what));
}

bool IsHex64(absl::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
         });
}

// A scalar field of `node`, required unless `optional`.
absl::Status Field(const YAML::Node& node, const char* key, const std::string& file,
                   const std::string& where, std::string* out) {
  const YAML::Node v = node[key];
  if (!v.IsDefined() || v.IsNull()) {
    return Bad(file, absl::StrCat(where, ".", key), "missing");
  }
  if (!v.IsScalar()) return Bad(file, absl::StrCat(where, ".", key), "expected a string");
  *out = v.Scalar();
  if (out->empty()) return Bad(file, absl::StrCat(where, ".", key), "must not be empty");
  return absl::OkStatus();
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

}  // namespace

std::string PackageSetDigest(const PackageSet& set) {
  std::vector<const PackageSet::Package*> sorted;
  for (const PackageSet::Package& p : set.packages) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  std::string text = absl::StrCat(set.name, "\n");
  for (const auto* p : sorted) absl::StrAppend(&text, p->name, " ", p->version, " ", p->sha256, "\n");
  return absl::StrCat("sha256:", Sha256Hex(text));
}

absl::StatusOr<PackageSet> ParsePackageSet(absl::string_view yaml, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // yaml-cpp's message quotes no value, only where it stopped.
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not YAML: ", e.msg));
  }
  if (!root.IsMap()) return Bad(file, "package set", "expected a mapping with name and packages");
  for (const auto& kv : root) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    if (key != "name" && key != "packages") {
      return Bad(file, key, "unknown field (a package set has name and packages)");
    }
  }
  PackageSet set;
  if (absl::Status s = Field(root, "name", file, "package set", &set.name); !s.ok()) return s;
  const YAML::Node packages = root["packages"];
  if (!packages.IsSequence() || packages.size() == 0) {
    return Bad(file, "packages", "expected a non-empty list of packages");
  }
  if (packages.size() > kMaxPackages) {
    return Bad(file, "packages", absl::StrCat(packages.size(), " packages; at most ", kMaxPackages));
  }
  std::set<std::string> names, secrets;
  for (size_t i = 0; i < packages.size(); ++i) {
    const std::string where = absl::StrCat("packages[", i, "]");
    const YAML::Node p = packages[i];
    if (!p.IsMap()) return Bad(file, where, "expected a mapping");
    for (const auto& kv : p) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      if (key != "name" && key != "version" && key != "secret" && key != "url" && key != "sha256") {
        return Bad(file, absl::StrCat(where, ".", key),
                   "unknown field (a package has name, version, secret, url, sha256)");
      }
    }
    PackageSet::Package pkg;
    for (auto [key, out] : {std::pair<const char*, std::string*>{"name", &pkg.name},
                            {"version", &pkg.version},
                            {"secret", &pkg.secret},
                            {"url", &pkg.url},
                            {"sha256", &pkg.sha256}}) {
      if (absl::Status s = Field(p, key, file, where, out); !s.ok()) return s;
    }
    if (!IsEnvName(pkg.secret)) {
      return Bad(file, where + ".secret", absl::StrCat("'", pkg.secret, "' is not a secret name"));
    }
    if (!IsHex64(pkg.sha256)) {
      return Bad(file, where + ".sha256", "expected 64 lower-case hex digits");
    }
    if (!names.insert(pkg.name).second) {
      return Bad(file, where + ".name", absl::StrCat("package '", pkg.name, "' is listed twice"));
    }
    if (!secrets.insert(pkg.secret).second) {
      return Bad(file, where + ".secret",
                 absl::StrCat("secret ", pkg.secret, " is filled by two packages"));
    }
    set.packages.push_back(std::move(pkg));
  }
  set.digest = PackageSetDigest(set);
  return set;
}

absl::StatusOr<PackageSet> ReadPackageSet(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read package set ", path));
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a package set file may be at most ", kMaxFileBytes, " bytes"));
  }
  return ParsePackageSet(text, path);
}

}  // namespace musafarm::cli
