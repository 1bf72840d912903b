#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// What a secret's value is replaced with.
inline constexpr char kRedacted[] = "***";

// Replaces secret values in a byte stream that arrives in chunks, so that a
// value split across two chunks (two reads of a task's pipe) is still caught.
//
// Matching is leftmost-longest: scanning from the start, at the first position
// where some secret matches, the longest secret matching there is replaced by
// kRedacted and the scan goes on after it. A match is decided only once no
// longer secret could still match at that position, so Feed() holds back the
// pending tail from the first position where the tail is a proper prefix of a
// secret (at most the longest secret's length - 1 bytes), and emits everything
// before it. With no secrets, output is input, byte for byte. Binary data
// (NULs, invalid UTF-8) passes through unchanged apart from the replacements.
//
// The two hex digits after a '%' in a secret match in either case, one digit
// apart from the other: encoders differ (curl writes %2F, some %2f), and a
// hand-built URL may mix them (%2f%3A). Every other byte matches exactly.
//
// Not thread-safe: one Redactor per stream, fed from one thread.
class Redactor {
 public:
  Redactor() = default;  // no secrets: the identity
  // Empty values are ignored (they would match everywhere); duplicates count once.
  explicit Redactor(std::vector<std::string> secrets);

  // Takes the next chunk; returns the output that is safe to emit now.
  std::string Feed(absl::string_view data);
  // The stream has ended: returns the held-back rest, redacted. The Redactor
  // may then be fed again as a new stream.
  std::string Finish();

  bool empty() const { return secrets_.empty(); }
  // Bytes held back by Feed(), waiting to see whether they start a secret.
  size_t pending() const { return pending_.size(); }

 private:
  // Redacts pending_ up to where a decision needs more input (everything when
  // `final`), removes that part from pending_ and returns its output.
  std::string Drain(bool final);
  // Whether the first `n` bytes of secret `k` match `text` (n <= both sizes).
  bool MatchesPrefix(size_t k, const char* text, size_t n) const;

  std::vector<std::string> secrets_;    // non-empty, distinct, longest first
  // hex_at_[k][j]: byte j of secret k is a hex digit of a %XX escape (matched
  // without case); empty when secret k has none.
  std::vector<std::vector<bool>> hex_at_;
  std::array<bool, 256> first_byte_{};  // first_byte_[b]: some secret starts with b
  std::string pending_;
};

// Redacts a whole text at once (as Feed(text) + Finish()).
std::string RedactString(absl::string_view text, const std::vector<std::string>& secrets);

// Redacts the regular file at `path` in place: streams it through a Redactor
// into `path`.redacting, then renames that over `path`, so the file is either
// the original or wholly redacted, never partly. Memory use is bounded by the
// chunk size, whatever the file's size. Does nothing when `secrets` holds no
// non-empty value. An error leaves `path` unredacted: callers must not use it.
absl::Status RedactFile(const std::string& path, const std::vector<std::string>& secrets);

}  // namespace musafarm
