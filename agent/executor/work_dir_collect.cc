#include "agent/executor/work_dir_collect.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/executor/artifact_names.h"

namespace musafarm::agent {
namespace {

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(int err) { return err == ELOOP ? "is a symbolic link" : std::strerror(err); }

// `path` inside the directory `root` (relative, no ".."), opened for reading
// without following any symbolic link; -1 and `why` otherwise.
int OpenBeneath(int root, absl::string_view path, std::string* why) {
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      *why = "leaves the task's work dir ('..')";
      return -1;
    }
    parts.push_back(p);
  }
  if (parts.empty()) {
    *why = "names the work dir itself";
    return -1;
  }
  Fd dir(::dup(root));
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string name(parts[i]);
    const bool last = i + 1 == parts.size();
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? O_NONBLOCK : O_DIRECTORY);
    const int fd = ::openat(dir.get(), name.c_str(), flags);
    if (fd < 0) {
      const int err = errno;
      // O_NOFOLLOW on a directory component gives ENOTDIR or ELOOP for a link.
      struct stat st;
      if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        *why = absl::StrCat(last ? "is" : absl::StrCat("'", name, "' in it is"),
                            " a symbolic link; collect follows none");
      } else if (err == ENOENT) {
        *why = "not found in the work dir";
      } else {
        *why = Errno(err);
      }
      return -1;
    }
    if (last) return fd;
    dir.Reset(fd);
  }
  return -1;  // not reached
}

// Copies the open file `in` to `dest` (created, 0600).
bool CopyTo(int in, const std::string& dest, std::string* why) {
  Fd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) {
    *why = absl::StrCat("cannot create ", dest, ": ", std::strerror(errno));
    return false;
  }
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      *why = absl::StrCat("cannot read it: ", std::strerror(errno));
      return false;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.get(), buf + done, static_cast<size_t>(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        *why = absl::StrCat("cannot write ", dest, ": ", std::strerror(errno));
        return false;
      }
      done += w;
    }
  }
}

}  // namespace

std::vector<CollectedFile> CollectFromWorkDir(
    const std::string& workdir, const google::protobuf::RepeatedPtrField<std::string>& paths,
    const std::function<void(const std::string&)>& say) {
  std::vector<CollectedFile> files;
  if (paths.empty()) return files;
  Fd root(::open(workdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    say(absl::StrCat("musafarm: cannot collect: cannot open ", workdir, ": ", std::strerror(errno)));
    return files;
  }
  const std::string dir = workdir + "/artifacts";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    say(absl::StrCat("musafarm: cannot collect: cannot create ", dir, ": ", std::strerror(errno)));
    return files;
  }
  std::set<std::string> used;
  for (const std::string& path : paths) {
    std::string why;
    absl::string_view rel = path;
    // An absolute path inside the work dir is the same file (a script may
    // write "$MUSAFARM_WORKDIR/report.xml"); any other is refused.
    if (absl::StartsWith(rel, "/")) {
      if (!absl::ConsumePrefix(&rel, workdir + "/")) {
        say(absl::StrCat("musafarm: not collecting ", path,
                         ": outside the task's work dir (collect paths are relative to it)"));
        continue;
      }
    }
    Fd in(OpenBeneath(root.get(), rel, &why));
    if (in.get() < 0) {
      say(absl::StrCat("musafarm: not collecting ", path, ": ", why));
      continue;
    }
    struct stat st;
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      say(absl::StrCat("musafarm: not collecting ", path, ": not a regular file"));
      continue;
    }
    // The copy's reads block on a regular file as usual.
    ::fcntl(in.get(), F_SETFL, ::fcntl(in.get(), F_GETFL) & ~O_NONBLOCK);
    const std::string name = UniqueArtifactName(ArtifactBasename(std::string(rel)), &used);
    const std::string dest = absl::StrCat(dir, "/", name);
    if (!CopyTo(in.get(), dest, &why)) {
      say(absl::StrCat("musafarm: not collecting ", path, ": ", why));
      ::unlink(dest.c_str());
      continue;
    }
    files.push_back({name, dest, path});
  }
  return files;
}

}  // namespace musafarm::agent
