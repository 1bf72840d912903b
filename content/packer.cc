#include "content/packer.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/format_bytes.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "content/ignore.h"
#include "content/tree.h"

namespace musafarm::content {
namespace {

// A directory as walked, before anything is hashed: the limit is checked on
// the sizes alone.
struct Node {
  struct File {
    std::string name;
    std::string path;
    bool executable = false;
  };
  std::vector<File> files;
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> dirs;
  std::vector<std::pair<std::string, std::string>> symlinks;  // name, target
};

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : absl::StrCat(dir, "/", name);
}

absl::Status ErrnoError(const std::string& path, int e) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(e)));
}

class Walker {
 public:
  Walker(std::string root, IgnoreRules rules, PackedTree* out)
      : root_(std::move(root)), rules_(std::move(rules)), out_(out) {}

  // `rel`: the directory's path below the root ("" for the root); `depth`
  // its depth. Each entry is judged on its own path, so an excluded directory
  // walked for an exception yields only what the exception puts back.
  absl::Status Walk(const std::string& rel, int depth, Node* node) {
    const std::string abs = rel.empty() ? root_ : absl::StrCat(root_, "/", rel);
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(abs.c_str()), &::closedir);
    if (d == nullptr) return ErrnoError(abs, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d.get())) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = Join(rel, name);
      const std::string full = absl::StrCat(abs, "/", name);
      struct stat st;
      if (::lstat(full.c_str(), &st) != 0) return ErrnoError(full, errno);
      const bool out = rules_.Excluded(path);
      if (S_ISDIR(st.st_mode)) {
        if (out && !rules_.MayIncludeUnder(path)) continue;
        auto child = std::make_unique<Node>();
        MF_RETURN_IF_ERROR(Walk(path, depth + 1, child.get()));
        // An excluded directory is kept only for what an exception put back.
        if (out && child->files.empty() && child->dirs.empty() && child->symlinks.empty()) continue;
        node->dirs.emplace_back(name, std::move(child));
        continue;
      }
      if (out) continue;
      if (S_ISREG(st.st_mode)) {
        node->files.push_back({name, full, (st.st_mode & S_IXUSR) != 0});
        total_ += st.st_size;
        out_->manifest.push_back(path);
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        const ssize_t n = ::readlink(full.c_str(), target.data(), target.size());
        if (n < 0) return ErrnoError(full, errno);
        target.resize(static_cast<size_t>(n));
        if (!SymlinkStaysInside(target, depth)) {
          return absl::InvalidArgumentError(
              absl::StrCat(full, ": symbolic link to '", target, "' points outside ", root_,
                           " (only links inside the context can be sent)"));
        }
        node->symlinks.emplace_back(name, target);
        out_->manifest.push_back(path);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(full, ": not a regular file, directory or symbolic link"));
      }
    }
    return absl::OkStatus();
  }

  // Hashes the files and builds the Directory blobs bottom-up.
  absl::StatusOr<v1::Digest> Hash(const Node& node) {
    v1::Directory dir;
    for (const Node::File& f : node.files) {
      MF_ASSIGN_OR_RETURN(v1::Digest d, DigestOfFile(f.path));
      v1::FileNode* fn = dir.add_files();
      fn->set_name(f.name);
      *fn->mutable_digest() = d;
      fn->set_executable(f.executable);
      ++out_->files;
      out_->bytes += d.size_bytes();
      out_->blobs.try_emplace(d.sha256(), PackedBlob{d, f.path, ""});
    }
    for (const auto& [name, child] : node.dirs) {
      MF_ASSIGN_OR_RETURN(v1::Digest d, Hash(*child));
      v1::DirectoryNode* dn = dir.add_dirs();
      dn->set_name(name);
      *dn->mutable_digest() = d;
    }
    for (const auto& [name, target] : node.symlinks) {
      v1::SymlinkNode* sn = dir.add_symlinks();
      sn->set_name(name);
      sn->set_target(target);
    }
    std::string blob = SerializeDirectory(dir);
    v1::Digest d = DigestOf(blob);
    if (out_->blobs.try_emplace(d.sha256(), PackedBlob{d, "", std::move(blob)}).second) {
      out_->directories.push_back(d.sha256());
    }
    return d;
  }

  int64_t total() const { return total_; }

 private:
  const std::string root_;
  const IgnoreRules rules_;
  PackedTree* const out_;
  int64_t total_ = 0;
};

absl::StatusOr<IgnoreRules> LoadRules(const std::string& root, const std::string& file) {
  if (file.empty()) return IgnoreRules();
  const std::string path = absl::StrCat(root, "/", file);
  std::ifstream in(path, std::ios::binary);
  if (!in) return IgnoreRules();  // no ignore file: nothing but .git/ is left out
  std::ostringstream text;
  text << in.rdbuf();
  return IgnoreRules::Parse(text.str(), path);
}

}  // namespace

absl::StatusOr<PackedTree> PackDirectory(const std::string& dir, const PackOptions& options) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError(dir, errno);
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(dir, ": not a directory"));
  std::string root = dir;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  MF_ASSIGN_OR_RETURN(IgnoreRules rules, LoadRules(root, options.ignore_file));
  PackedTree out;
  Walker walker(root, std::move(rules), &out);
  Node top;
  MF_RETURN_IF_ERROR(walker.Walk("", 0, &top));
  if (options.max_bytes > 0 && walker.total() > options.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        dir, ": ", FormatBytes(static_cast<uint64_t>(walker.total())), " of files is over the limit of ",
        FormatBytes(static_cast<uint64_t>(options.max_bytes)), " (", options.max_bytes, " bytes",
        options.limit_source.empty() ? "" : absl::StrCat(", ", options.limit_source),
        "); exclude what the build does not need in ", dir, "/.dockerignore"));
  }
  std::sort(out.manifest.begin(), out.manifest.end());
  MF_ASSIGN_OR_RETURN(out.root, walker.Hash(top));
  return out;
}

}  // namespace musafarm::content
