#include "coordinator/joined_inputs.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "content/tree.h"

namespace musafarm::coordinator {
namespace {

// A directory entry's name: one path component.
bool IsComponent(absl::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.size() <= 255 &&
         s.find('/') == absl::string_view::npos && s.find('\0') == absl::string_view::npos;
}

template <typename Nodes>
void Drop(Nodes* nodes, const std::string& name) {
  nodes->erase(std::remove_if(nodes->begin(), nodes->end(),
                              [&](const auto& n) { return n.name() == name; }),
               nodes->end());
}

absl::Status Store(BlobStore& blobs, const std::string& bytes, const v1::Digest& digest) {
  absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs.StartWrite(digest, 0);
  if (up.status().code() == absl::StatusCode::kAlreadyExists) return absl::OkStatus();
  if (!up.ok()) return up.status();
  MF_RETURN_IF_ERROR((*up)->Append(bytes));
  return (*up)->Finish();
}

absl::Status Join(BlobStore& blobs, const std::map<std::string, const v1::JobInput*>& before,
                  v1::JobInput* in) {
  const std::string what = absl::StrCat("input '", in->name(), "' (", in->source(), ")");
  v1::Directory root;
  int64_t files = 0, bytes = 0;
  bool has_top = false;
  std::vector<std::pair<std::string, const v1::JobInput*>> subs;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(in->source()).substr(kJoinPrefix.size()), ',')) {
    const size_t eq = part.find('=');
    const std::string sub(part.substr(0, eq));
    const std::string name(eq == absl::string_view::npos ? "" : part.substr(eq + 1));
    if (eq == absl::string_view::npos || name.empty() || (sub != "." && !IsComponent(sub))) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": '", part, "' is not .=INPUT or DIR=INPUT (DIR one path component)"));
    }
    auto it = before.find(name);
    if (it == before.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": '", part, "' names no input given before it with a tree"));
    }
    files += it->second->files();
    bytes += it->second->bytes();
    if (sub != ".") {
      for (const auto& earlier : subs) {
        if (earlier.first == sub) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": '", sub, "' is given twice"));
        }
      }
      subs.emplace_back(sub, it->second);
      continue;
    }
    if (has_top) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": '.' is given twice"));
    }
    has_top = true;
    MF_ASSIGN_OR_RETURN(std::string blob,
                        blobs.ReadSmall(it->second->tree(), kMaxDirectoryBlobBytes));
    MF_ASSIGN_OR_RETURN(root, content::ParseDirectory(
                                  blob, 0, absl::StrCat(what, ": input '", name, "'")));
  }
  for (const auto& [sub, part] : subs) {
    Drop(root.mutable_files(), sub);
    Drop(root.mutable_dirs(), sub);
    Drop(root.mutable_symlinks(), sub);
    v1::DirectoryNode* node = root.add_dirs();
    node->set_name(sub);
    *node->mutable_digest() = part->tree();
  }
  std::sort(root.mutable_dirs()->begin(), root.mutable_dirs()->end(),
            [](const v1::DirectoryNode& a, const v1::DirectoryNode& b) {
              return a.name() < b.name();
            });
  const std::string serialized = content::SerializeDirectory(root);
  const v1::Digest digest = content::DigestOf(serialized);
  MF_RETURN_IF_ERROR(Store(blobs, serialized, digest));
  *in->mutable_tree() = digest;
  in->set_files(files);
  in->set_bytes(bytes);
  return absl::OkStatus();
}

}  // namespace

bool IsJoinSource(absl::string_view source) { return absl::StartsWith(source, kJoinPrefix); }

absl::Status ResolveJoinedInputs(BlobStore& blobs, v1::SubmitRequest* request) {
  std::map<std::string, const v1::JobInput*> before;
  for (v1::JobInput& in : *request->mutable_inputs()) {
    if (in.tree().sha256().empty() && IsJoinSource(in.source())) {
      MF_RETURN_IF_ERROR(Join(blobs, before, &in));
    }
    if (!in.tree().sha256().empty()) before[in.name()] = &in;
  }
  return absl::OkStatus();
}

}  // namespace musafarm::coordinator
