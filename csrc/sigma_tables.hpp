// The residual model: discretised zero-mean Gaussians at 64 log-spaced sigma levels.
//
// Read me first:
//  * THE single source of the sigma constants.  docs/bitstream.md quotes them; the Python package
//    exposes them (jpegai_fast.entropy.SIGMA_LEVELS, ...); training/ reads them from there.
//      sigma_k = 0.11 * (60 / 0.11)^(k / 63),  k = 0..63
//    A Q7 log-sigma value s (s = 128 k at level k, as the integer hyper-scale decoder outputs it) maps
//    to the table index clamp((s + 64) >> 7, 0, 63): round to the nearest level.
//  * The integer frequencies are frozen constants (sigma_tables_data.inc, made by
//    tools/gen_sigma_tables.py), never recomputed with floating point at run time, so every machine
//    codes with identical tables.  table_hash() pins their bytes (golden value in the tests).
//  * Scale index kSkipIndex marks a position that carries no symbol (skip mode): it decodes to 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace jpegai::tables {

constexpr int kNumLevels = 64;
constexpr double kSigmaMin = 0.11;
constexpr double kSigmaMax = 60.0;
constexpr int kLogSigmaFracBits = 7;     // Q7 log-sigma: one level = 128
constexpr int kProbBits = 12;            // 4096 slots: one 4-byte decode entry per slot, 1 MiB in all
constexpr uint32_t kProbScale = 1u << kProbBits;
constexpr uint8_t kSkipIndex = 255;      // "no symbol here" (skip mode)
constexpr int kMaxRadius = 127;          // core alphabet [-R, R]; beyond it the escape codes the value

constexpr int index_from_q7(int32_t s) {
  // int64: s + 64 must not overflow for s near INT32_MAX.  >> on a negative value is a floor.
  const int64_t k = (int64_t{s} + (1 << (kLogSigmaFracBits - 1))) >> kLogSigmaFracBits;
  return k < 0 ? 0 : (k >= kNumLevels ? kNumLevels - 1 : static_cast<int>(k));
}

// Scale index map of one component: index = index_from_q7(s + gain_log[c]) per position, or
// kSkipIndex where that index is below skip_below (skip mode: the model's threshold).
// s: channels x plane Q7 log-sigma (the hyper-scale decoder output), gain_log: channels Q7 offsets.
void scale_index_map(const int32_t* s, const int32_t* gain_log, size_t channels, size_t plane, int skip_below,
                     uint8_t* out);

// One packed decode entry per (level, slot):  bits 0-11 freq, 12-23 cumulative start,
// 24-31 symbol byte b.  For residuals b = v + 128 (v in [-127, 127]) and b = 0 is the escape.
constexpr uint32_t kEntryFreqMask = 0xFFF;
constexpr int kEntryCumShift = 12;
constexpr int kEntrySymbolShift = 24;
constexpr int kResidualSymbolBias = 128;
constexpr uint8_t kEscapeByte = 0;

struct ResidualTables {
  std::vector<uint32_t> decode;   // kNumLevels * kProbScale packed entries
  std::vector<uint16_t> cum;      // per level: exclusive prefix sums of the frozen frequencies
  const uint16_t* freqs(int k) const;  // 2R_k + 2 frequencies: symbols -R..R, then escape
  const uint16_t* cums(int k) const;
  int radius(int k) const;
  int escape_order(int k) const;   // Exp-Golomb order of |v| - R - 1 in the bypass bits
};

// Built once on first use (thread-safe), immutable afterwards.
const ResidualTables& residual_tables();

// sigma_k in double precision, for encoders and reports (never used to code).
double sigma_level(int k);

// FNV-1a 64 over the little-endian bytes of radius, escape order and frequency tables, then of the
// decode table: any change of any table byte changes it.
uint64_t table_hash();

}  // namespace jpegai::tables
