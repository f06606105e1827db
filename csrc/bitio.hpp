// MSB-first bit writer/reader with Exp-Golomb ue(v)/se(v), as used by the container headers, the
// substream directories and the residual coder's bypass (escape) bits.
//
// Read me first:
//  * Bits are packed MSB-first: the first bit written is bit 7 of byte 0.
//  * ue(v): k leading zeros, a one, then k suffix bits; value = 2^k - 1 + suffix.  The reader refuses
//    more than kMaxUeLeadingZeros zeros, so a run of zero bytes cannot make it loop or overflow.
//  * se(v): the H.264 mapping, 0, 1, -1, 2, -2, ... <-> 0, 1, 2, 3, 4, ...
//  * The reader never reads past its buffer: running out of bits throws BitstreamError(field).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.hpp"

namespace jpegai {

// ue(v) values up to 2^32 - 2 need 31 leading zeros; more can only come from a corrupt stream.
constexpr int kMaxUeLeadingZeros = 31;

class BitWriter {
 public:
  void put_bits(uint64_t value, int count) {  // count in [0, 57]
    acc_ = (acc_ << count) | (value & ((uint64_t{1} << count) - 1));
    acc_bits_ += count;
    while (acc_bits_ >= 8) {
      acc_bits_ -= 8;
      bytes_.push_back(static_cast<uint8_t>(acc_ >> acc_bits_));
    }
  }
  void put_bit(bool b) { put_bits(b ? 1 : 0, 1); }
  // Values up to kMaxUe (the reader's limit of 31 leading zeros); larger ones are a caller bug.
  static constexpr uint32_t kMaxUe = 0xFFFFFFFEu;
  void put_ue(uint32_t value) {
    if (value > kMaxUe) throw ArgumentError("ue(v) value above 2^32 - 2");
    const uint64_t v = uint64_t{value} + 1;
    int bits = 0;
    while ((v >> bits) > 1) ++bits;  // bits = floor(log2(v))
    put_bits(0, bits);
    put_bits(v, bits + 1);
  }
  void put_se(int32_t value) {  // |value| < 2^31: INT32_MIN would map to 2^32, beyond ue(v)
    const int64_t v = value;
    const uint64_t mapped = v > 0 ? uint64_t(2 * v - 1) : uint64_t(-2 * v);
    if (mapped > kMaxUe) throw ArgumentError("se(v) value out of range");
    put_ue(static_cast<uint32_t>(mapped));
  }
  // Exp-Golomb of order k (k low bits after an order-0 prefix of value >> k).
  void put_eg(uint32_t value, int order) {
    put_ue(value >> order);
    put_bits(value, order);
  }
  // Pads with zero bits to the next byte boundary.
  void align() {
    if (acc_bits_ > 0) put_bits(0, 8 - acc_bits_);
  }
  size_t bit_count() const { return bytes_.size() * 8 + acc_bits_; }
  // Aligns, then hands over the bytes.
  std::vector<uint8_t> finish() {
    align();
    return std::move(bytes_);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t acc_ = 0;
  int acc_bits_ = 0;
};

class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size) : data_(data), size_bits_(size * 8) {}

  size_t bits_left() const { return size_bits_ - pos_; }
  size_t bit_position() const { return pos_; }
  size_t byte_position() const { return (pos_ + 7) / 8; }

  uint32_t get_bits(int count, const char* field) {  // count in [0, 32]
    if (static_cast<size_t>(count) > bits_left()) throw BitstreamError(field, "truncated");
    uint32_t v = 0;
    for (int i = 0; i < count; ++i) {
      v = (v << 1) | ((data_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1u);
      ++pos_;
    }
    return v;
  }
  bool get_bit(const char* field) { return get_bits(1, field) != 0; }
  uint32_t get_ue(const char* field) {
    int zeros = 0;
    while (!get_bit(field)) {
      if (++zeros > kMaxUeLeadingZeros) throw BitstreamError(field, "Exp-Golomb prefix too long");
    }
    const uint64_t suffix = zeros ? get_bits(zeros, field) : 0;
    return static_cast<uint32_t>((uint64_t{1} << zeros) - 1 + suffix);
  }
  int32_t get_se(const char* field) {
    const uint32_t m = get_ue(field);
    return (m & 1) ? static_cast<int32_t>((m + 1) / 2) : -static_cast<int32_t>(m / 2);
  }
  uint32_t get_eg(int order, const char* field) {
    const uint64_t prefix = get_ue(field);
    const uint64_t v = (prefix << order) | get_bits(order, field);
    if (v > UINT32_MAX) throw BitstreamError(field, "Exp-Golomb value out of range");
    return static_cast<uint32_t>(v);
  }
  // Skips to the next byte boundary; the padding must be zero (a cheap corruption check).
  void align(const char* field) {
    const int pad = static_cast<int>((8 - (pos_ & 7)) & 7);
    if (get_bits(pad, field) != 0) throw BitstreamError(field, "non-zero padding bits");
  }

 private:
  const uint8_t* data_;
  size_t size_bits_;
  size_t pos_ = 0;
};

}  // namespace jpegai
