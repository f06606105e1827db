// Residual coding: int16 symbols under the fixed Gaussian tables, one scale index per symbol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace jpegai {

// A tensor may be split into 1..64 independently decodable substreams.
constexpr uint32_t kMaxSubstreams = 64;

// scale_index[i] in [0, 63] selects sigma level k, or tables::kSkipIndex (255) for "no symbol"
// (the symbol must then be 0).  Throws ArgumentError on out-of-range indices or substreams.
std::vector<uint8_t> encode_residual(const int16_t* symbols, const uint8_t* scale_index, size_t n,
                                     uint32_t substreams, unsigned threads);

// Which decode kernel: the fastest the CPU has, or a named one (tests compare them bit for bit).
enum class Kernel { kAuto, kScalar, kAvx2 };

// Inverse of encode_residual given the same scale_index; throws BitstreamError on any inconsistency.
// Throws ArgumentError if `kernel` names one this CPU cannot run.
void decode_residual(const uint8_t* data, size_t size, const uint8_t* scale_index, size_t n,
                     int16_t* out, unsigned threads, Kernel kernel = Kernel::kAuto);

// Ideal code length in bits, -sum log2(freq / 2^12), plus the bypass bits of escaped values: what
// the coder would spend with no overhead, under exactly the same tables.
double residual_information_bits(const int16_t* symbols, const uint8_t* scale_index, size_t n);

// Number of positions with a coded symbol (scale index != 255); validates every index.
size_t count_coded(const uint8_t* scale_index, size_t n);

}  // namespace jpegai
