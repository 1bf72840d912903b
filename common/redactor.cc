#include "common/redactor.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/file_modes.h"

namespace musafarm {
namespace {
constexpr size_t kFileChunk = 64 * 1024;
}  // namespace

Redactor::Redactor(std::vector<std::string> secrets) {
  for (std::string& s : secrets) {
    if (!s.empty()) secrets_.push_back(std::move(s));
  }
  // Longest first: the first full match at a position is then the longest.
  std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  secrets_.erase(std::unique(secrets_.begin(), secrets_.end()), secrets_.end());
  for (const std::string& s : secrets_) first_byte_[static_cast<unsigned char>(s[0])] = true;
  hex_at_.resize(secrets_.size());
  for (size_t k = 0; k < secrets_.size(); ++k) {
    const std::string& s = secrets_[k];
    for (size_t j = 0; j + 2 < s.size(); ++j) {
      if (s[j] != '%' || !absl::ascii_isxdigit(static_cast<unsigned char>(s[j + 1])) ||
          !absl::ascii_isxdigit(static_cast<unsigned char>(s[j + 2]))) {
        continue;
      }
      hex_at_[k].resize(s.size());
      hex_at_[k][j + 1] = hex_at_[k][j + 2] = true;
    }
  }
}

bool Redactor::MatchesPrefix(size_t k, const char* text, size_t n) const {
  const std::string& s = secrets_[k];
  if (hex_at_[k].empty()) return std::memcmp(s.data(), text, n) == 0;
  for (size_t j = 0; j < n; ++j) {
    if (s[j] == text[j]) continue;
    if (!hex_at_[k][j] || absl::ascii_tolower(static_cast<unsigned char>(s[j])) !=
                              absl::ascii_tolower(static_cast<unsigned char>(text[j]))) {
      return false;
    }
  }
  return true;
}

std::string Redactor::Feed(absl::string_view data) {
  if (secrets_.empty()) return std::string(data);
  pending_.append(data.data(), data.size());
  return Drain(/*final=*/false);
}

std::string Redactor::Finish() {
  if (secrets_.empty()) return std::string();
  return Drain(/*final=*/true);
}

std::string Redactor::Drain(bool final) {
  std::string out;
  out.reserve(pending_.size());
  const size_t n = pending_.size();
  size_t i = 0;
  size_t literal_from = 0;  // start of the bytes not yet copied to `out`
  while (i < n) {
    // Most bytes start no secret: skip them without comparing.
    if (!first_byte_[static_cast<unsigned char>(pending_[i])]) {
      ++i;
      continue;
    }
    const absl::string_view rest(pending_.data() + i, n - i);
    size_t match = 0;
    bool undecided = false;
    for (size_t k = 0; k < secrets_.size(); ++k) {
      const std::string& s = secrets_[k];
      if (s.size() > rest.size()) {
        // A longer secret may still match here once more bytes arrive.
        if (!final && MatchesPrefix(k, rest.data(), rest.size())) {
          undecided = true;
          break;
        }
      } else if (MatchesPrefix(k, rest.data(), s.size())) {
        match = s.size();  // longest first: no longer one matches
        break;
      }
    }
    if (undecided) break;
    if (match == 0) {
      ++i;
      continue;
    }
    out.append(pending_, literal_from, i - literal_from);
    out.append(kRedacted);
    i += match;
    literal_from = i;
  }
  out.append(pending_, literal_from, i - literal_from);
  pending_.erase(0, i);
  return out;
}

std::string RedactString(absl::string_view text, const std::vector<std::string>& secrets) {
  Redactor r(secrets);
  std::string out = r.Feed(text);
  out += r.Finish();
  return out;
}

absl::Status RedactFile(const std::string& path, const std::vector<std::string>& secrets) {
  Redactor r(secrets);
  if (r.empty()) return absl::OkStatus();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  absl::StatusOr<std::unique_ptr<AtomicFile>> out = AtomicFile::Create(path, kPrivateFileMode);
  if (!out.ok()) return absl::InternalError(absl::StrCat("cannot write ", out.status().message()));
  std::string buf(kFileChunk, '\0');
  absl::Status written = absl::OkStatus();
  while (in && written.ok()) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const size_t got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    written = (*out)->Append(r.Feed(absl::string_view(buf.data(), got)));
  }
  const bool read_ok = in.eof() && !in.bad();
  if (written.ok()) written = (*out)->Append(r.Finish());
  if (!read_ok || !written.ok()) {
    return absl::InternalError(absl::StrCat("cannot redact ", path, ": ",
                                            read_ok ? written.message() : "read failed"));
  }
  if (absl::Status s = (*out)->Commit(); !s.ok()) {
    return absl::InternalError(absl::StrCat("cannot replace ", path, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace musafarm
