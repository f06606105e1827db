// The hyper-latent z model: one learned integer CDF per channel (JPEG AI's "factorised" prior).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace jpegai {

class FactorizedModel {
 public:
  // cdf: channels x (symbols + 1) values, cdf[c][0] = 0, cdf[c][symbols] = 2^12, strictly increasing
  // (every symbol has frequency >= 1).  Symbol i stands for the value i - offset.  2 <= symbols <= 255.
  FactorizedModel(const uint16_t* cdf, size_t channels, size_t symbols, int offset);

  size_t channels() const { return channels_; }
  size_t symbols() const { return symbols_; }
  int offset() const { return offset_; }

  // symbols: channels x plane values (plane = H * W), each in [-offset, symbols - 1 - offset].
  std::vector<uint8_t> encode(const int16_t* values, size_t plane, uint32_t substreams, unsigned threads) const;
  void decode(const uint8_t* data, size_t size, size_t plane, int16_t* out, unsigned threads) const;

  const std::vector<uint32_t>& decode_tables() const { return decode_; }
  const std::vector<uint16_t>& cdf() const { return cdf_; }

 private:
  size_t channels_, symbols_;
  int offset_;
  std::vector<uint16_t> cdf_;
  std::vector<uint32_t> decode_;  // channels * 4096 packed entries
};

}  // namespace jpegai
