#include "agent/executor/pending_removals.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/atomic_file.h"
#include "common/logging.h"

namespace musafarm::agent {
namespace {

bool KnownKind(absl::string_view kind) {
  return kind == "container" || kind == "attempt" || kind == "image";
}

}  // namespace

PendingRemovals::PendingRemovals(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_);
  std::string line;
  absl::MutexLock lock(&mu_);
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (parts.size() != 2 || !KnownKind(parts[0]) || parts[1].empty()) continue;
    Entry e{parts[0], parts[1]};
    if (std::find(entries_.begin(), entries_.end(), e) == entries_.end()) entries_.push_back(e);
  }
}

void PendingRemovals::Add(Entry entry) {
  absl::MutexLock lock(&mu_);
  if (std::find(entries_.begin(), entries_.end(), entry) != entries_.end()) return;
  entries_.push_back(std::move(entry));
  Save();
}

std::vector<std::string> PendingRemovals::Retry(
    const std::function<absl::Status(const Entry&)>& remove) {
  std::vector<std::string> lines;
  for (const Entry& e : List()) {
    // Called without mu_: removal runs the docker CLI, and Add must not wait on it.
    const absl::Status s = remove(e);
    if (!s.ok()) continue;
    lines.push_back(absl::StrCat("removed ", e.kind, " ", e.target,
                                 " (its removal had failed while the daemon was away)"));
    absl::MutexLock lock(&mu_);
    entries_.erase(std::remove(entries_.begin(), entries_.end(), e), entries_.end());
    Save();
  }
  return lines;
}

std::vector<PendingRemovals::Entry> PendingRemovals::List() const {
  absl::MutexLock lock(&mu_);
  return entries_;
}

void PendingRemovals::Save() {
  std::string text;
  for (const Entry& e : entries_) absl::StrAppend(&text, e.kind, " ", e.target, "\n");
  if (absl::Status s = WriteFileAtomically(path_, text, 0600); !s.ok()) {
    GetLogger("agent")->warn("cannot record the removals still to do: {}", std::string(s.message()));
  }
}

}  // namespace musafarm::agent
