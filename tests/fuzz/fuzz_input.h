#pragma once

// Reads a fuzzer's input bytes as the choices of a test case (lengths, split
// points, flags), like clang's FuzzedDataProvider, which the GCC replay build
// does not have. Exhausted input reads as zeros, so every input is a case.

#include <cstddef>
#include <cstdint>
#include <string>

namespace musafarm::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return empty() ? 0 : data_[pos_++]; }
  bool Bool() { return (Byte() & 1) != 0; }
  // A number in [0, n); 0 when n is 0.
  size_t Below(size_t n) {
    if (n == 0) return 0;
    const size_t v = static_cast<size_t>(Byte()) << 8 | Byte();
    return v % n;
  }
  // Up to `max` bytes, the count taken from the input first.
  std::string Bytes(size_t max) {
    size_t n = Below(max + 1);
    if (n > size_ - pos_ && !empty()) n = size_ - pos_;
    if (empty()) return "";
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  std::string Rest() {
    if (empty()) return "";
    std::string out(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace musafarm::fuzz
