#include "common/durable_record.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace musafarm {
namespace {

// magic, generation, payload length, checksum: 8 bytes each, host order (the
// slots are read back on the host that wrote them).
constexpr char kMagic[8] = {'m', 'f', 'r', 'e', 'c', 'o', 'r', '1'};
constexpr size_t kHeader = 32;
constexpr uint64_t kMinCapacity = 4096;

std::string SlotPath(const std::string& base, int slot) { return absl::StrCat(base, ".", slot); }

absl::Status ErrnoError(const std::string& what, int e) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(e)));
}

// FNV-1a, 64 bits, over the generation, the length and the payload: enough to
// tell a torn write from a whole one (nobody forges these files).
uint64_t Checksum(uint64_t generation, absl::string_view payload) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 1099511628211ull;
    }
  };
  const uint64_t length = payload.size();
  mix(reinterpret_cast<const char*>(&generation), sizeof generation);
  mix(reinterpret_cast<const char*>(&length), sizeof length);
  mix(payload.data(), payload.size());
  return h;
}

std::string Frame(uint64_t generation, absl::string_view payload) {
  std::string out(kHeader, '\0');
  const uint64_t length = payload.size();
  const uint64_t sum = Checksum(generation, payload);
  std::memcpy(out.data(), kMagic, 8);
  std::memcpy(out.data() + 8, &generation, 8);
  std::memcpy(out.data() + 16, &length, 8);
  std::memcpy(out.data() + 24, &sum, 8);
  out.append(payload.data(), payload.size());
  return out;
}

struct Intact {
  uint64_t generation;
  std::string payload;
};

// The record a slot's bytes hold, if they hold a whole one.
std::optional<Intact> Parse(absl::string_view bytes) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0) return std::nullopt;
  uint64_t generation = 0, length = 0, sum = 0;
  std::memcpy(&generation, bytes.data() + 8, 8);
  std::memcpy(&length, bytes.data() + 16, 8);
  std::memcpy(&sum, bytes.data() + 24, 8);
  if (generation == 0 || length > bytes.size() - kHeader) return std::nullopt;
  const absl::string_view payload = bytes.substr(kHeader, length);
  if (Checksum(generation, payload) != sum) return std::nullopt;
  return Intact{generation, std::string(payload)};
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string out;
  char buf[65536];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(path, errno);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  for (off_t at = 0; !data.empty();) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(path, errno);
    data.remove_prefix(static_cast<size_t>(n));
    at += n;
  }
  return absl::OkStatus();
}

}  // namespace

DurableRecord::DurableRecord(std::string base_path) : base_path_(std::move(base_path)) {}

DurableRecord::~DurableRecord() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

absl::Status DurableRecord::Open() {
  bool created = false;
  for (int slot = 0; slot < 2; ++slot) {
    const std::string path = SlotPath(base_path_, slot);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      created = true;
    }
    if (fd < 0) return ErrnoError(path, errno);
    fds_[slot] = fd;
    absl::StatusOr<std::string> bytes = ReadAll(fd, path);
    if (!bytes.ok()) return bytes.status();
    capacity_[slot] = bytes->size();
    if (std::optional<Intact> r = Parse(*bytes); r && r->generation > generation_) {
      generation_ = r->generation;
      newest_ = slot;
    }
  }
  if (created) {
    // The new files' names must survive a crash too: once, not per write.
    std::string dir = std::filesystem::path(base_path_).parent_path().string();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return ErrnoError(dir, errno);
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0) return ErrnoError(absl::StrCat("fsync ", dir), e);
  }
  open_ = true;
  return absl::OkStatus();
}

absl::Status DurableRecord::Write(absl::string_view bytes, Sync sync) {
  if (!open_) {
    if (absl::Status s = Open(); !s.ok()) return s;
  }
  const int slot = newest_ == 0 ? 1 : 0;
  const std::string path = SlotPath(base_path_, slot);
  std::string frame = Frame(generation_ + 1, bytes);
  uint64_t capacity = capacity_[slot];
  if (frame.size() > capacity) {
    // Grown once, with zeros written past the record: later writes of this
    // size overwrite allocated blocks and change no metadata.
    capacity = kMinCapacity;
    while (capacity < frame.size()) capacity *= 2;
    frame.resize(capacity, '\0');
  }
  if (absl::Status s = WriteAll(fds_[slot], frame, path); !s.ok()) return s;
  if (sync == Sync::kDurable && ::fdatasync(fds_[slot]) != 0) {
    return ErrnoError(absl::StrCat("fdatasync ", path), errno);
  }
  capacity_[slot] = capacity;
  ++generation_;
  newest_ = slot;
  return absl::OkStatus();
}

absl::StatusOr<std::string> DurableRecord::Read(const std::string& base_path) {
  std::optional<Intact> newest;
  for (int slot = 0; slot < 2; ++slot) {
    const std::string path = SlotPath(base_path, slot);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) continue;
    if (fd < 0) return ErrnoError(path, errno);
    absl::StatusOr<std::string> bytes = ReadAll(fd, path);
    ::close(fd);
    if (!bytes.ok()) return bytes.status();
    std::optional<Intact> r = Parse(*bytes);
    if (r && (!newest || r->generation > newest->generation)) newest = std::move(r);
  }
  if (!newest) return absl::NotFoundError(absl::StrCat(base_path, ".{0,1}: no intact record"));
  return std::move(newest->payload);
}

}  // namespace musafarm
