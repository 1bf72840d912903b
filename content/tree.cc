#include "content/tree.h"

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace musafarm::content {
namespace {

constexpr int kMaxDepth = 256;

absl::Status CheckName(absl::string_view name, absl::string_view where) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": '", name, "' is not a single path component"));
  }
  return absl::OkStatus();
}

template <typename Nodes>
absl::Status CheckSorted(const Nodes& nodes, std::set<std::string>* seen,
                         absl::string_view where) {
  const std::string* prev = nullptr;
  for (const auto& n : nodes) {
    MF_RETURN_IF_ERROR(CheckName(n.name(), where));
    if (prev != nullptr && !(*prev < n.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": entries not sorted by name at '", n.name(), "'"));
    }
    if (!seen->insert(n.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": '", n.name(), "' appears twice"));
    }
    prev = &n.name();
  }
  return absl::OkStatus();
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : absl::StrCat(dir, "/", name);
}

absl::Status Walk(const v1::Digest& digest, const std::string& path, int depth,
                  const DirectoryFetcher& fetch, const TreeVisitor& visit, TreeStats* stats) {
  const std::string where = absl::StrCat("directory '", path.empty() ? "." : path, "' (",
                                         ShortDigest(digest), ")");
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": deeper than ", kMaxDepth, " directories"));
  }
  MF_ASSIGN_OR_RETURN(std::string blob, fetch(digest));
  MF_ASSIGN_OR_RETURN(v1::Directory dir, ParseDirectory(blob, depth, where));
  ++stats->directories;
  for (const v1::FileNode& f : dir.files()) {
    ++stats->files;
    stats->bytes += f.digest().size_bytes();
  }
  if (visit.directory) MF_RETURN_IF_ERROR(visit.directory(path, digest, dir));
  for (const v1::DirectoryNode& d : dir.dirs()) {
    MF_RETURN_IF_ERROR(Walk(d.digest(), Join(path, d.name()), depth + 1, fetch, visit, stats));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SerializeDirectory(const v1::Directory& dir) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  dir.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

bool SymlinkStaysInside(absl::string_view target, int depth) {
  if (target.empty() || absl::StartsWith(target, "/")) return false;
  int level = depth;
  for (absl::string_view seg : absl::StrSplit(target, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (--level < 0) return false;
    } else {
      ++level;
    }
  }
  return true;
}

absl::StatusOr<v1::Directory> ParseDirectory(absl::string_view blob, int depth,
                                             absl::string_view where) {
  v1::Directory dir;
  if (!dir.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a Directory message"));
  }
  std::set<std::string> seen;
  MF_RETURN_IF_ERROR(CheckSorted(dir.files(), &seen, where));
  MF_RETURN_IF_ERROR(CheckSorted(dir.dirs(), &seen, where));
  MF_RETURN_IF_ERROR(CheckSorted(dir.symlinks(), &seen, where));
  for (const v1::FileNode& f : dir.files()) {
    MF_RETURN_IF_ERROR(CheckDigest(f.digest(), absl::StrCat(where, ": file '", f.name(), "'")));
  }
  for (const v1::DirectoryNode& d : dir.dirs()) {
    MF_RETURN_IF_ERROR(CheckDigest(d.digest(), absl::StrCat(where, ": dir '", d.name(), "'")));
  }
  for (const v1::SymlinkNode& s : dir.symlinks()) {
    if (!SymlinkStaysInside(s.target(), depth)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": symbolic link '", s.name(),
                                                     "' -> '", s.target(),
                                                     "' points outside the tree"));
    }
  }
  return dir;
}

absl::StatusOr<TreeStats> WalkTree(const v1::Digest& root, const DirectoryFetcher& fetch,
                                   const TreeVisitor& visit) {
  TreeStats stats;
  MF_RETURN_IF_ERROR(Walk(root, "", 0, fetch, visit, &stats));
  return stats;
}

}  // namespace musafarm::content
