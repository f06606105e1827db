#include "sigma_tables.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

namespace jpegai::tables {
namespace {
#include "sigma_tables_data.inc"

static_assert(sizeof(kTableRadius) == kNumLevels, "one radius per level");

ResidualTables build() {
  ResidualTables t;
  t.decode.resize(size_t{kNumLevels} * kProbScale);
  t.cum.resize(kTableFreqOffset[kNumLevels]);
  for (int k = 0; k < kNumLevels; ++k) {
    const int radius = kTableRadius[k];
    const int count = 2 * radius + 2;
    uint32_t start = 0;
    uint32_t* slots = &t.decode[size_t(k) * kProbScale];
    for (int i = 0; i < count; ++i) {
      const uint32_t freq = kTableFreqs[kTableFreqOffset[k] + i];
      t.cum[kTableFreqOffset[k] + i] = static_cast<uint16_t>(start);
      const uint32_t byte = i == count - 1 ? kEscapeByte : uint32_t(i - radius + kResidualSymbolBias);
      const uint32_t entry = freq | (start << kEntryCumShift) | (byte << kEntrySymbolShift);
      for (uint32_t s = 0; s < freq; ++s) slots[start + s] = entry;
      start += freq;
    }
  }
  return t;
}

uint64_t fnv1a(uint64_t h, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

template <typename T>
uint64_t fnv1a_le(uint64_t h, const T* v, size_t n) {  // explicit LE bytes: same hash on any host
  for (size_t i = 0; i < n; ++i) {
    uint8_t b[sizeof(T)];
    for (size_t j = 0; j < sizeof(T); ++j) b[j] = static_cast<uint8_t>(uint64_t(v[i]) >> (8 * j));
    h = fnv1a(h, b, sizeof(T));
  }
  return h;
}
}  // namespace

const uint16_t* ResidualTables::freqs(int k) const { return &kTableFreqs[kTableFreqOffset[k]]; }
const uint16_t* ResidualTables::cums(int k) const { return &cum[kTableFreqOffset[k]]; }
int ResidualTables::radius(int k) const { return kTableRadius[k]; }
int ResidualTables::escape_order(int k) const { return kTableEscapeOrder[k]; }

const ResidualTables& residual_tables() {
  static const ResidualTables tables = build();
  return tables;
}

void scale_index_map(const int32_t* s, const int32_t* gain_log, size_t channels, size_t plane, int skip_below,
                     uint8_t* out) {
  for (size_t c = 0; c < channels; ++c) {
    const int32_t offset = gain_log[c];
    for (size_t i = 0; i < plane; ++i) {
      const int k = index_from_q7(int32_t(std::max<int64_t>(INT32_MIN, std::min<int64_t>(INT32_MAX, int64_t(s[c * plane + i]) + offset))));
      out[c * plane + i] = k < skip_below ? kSkipIndex : uint8_t(k);
    }
  }
}

double sigma_level(int k) {
  return kSigmaMin * std::pow(kSigmaMax / kSigmaMin, double(k) / (kNumLevels - 1));
}

uint64_t table_hash() {
  const ResidualTables& t = residual_tables();
  uint64_t h = 0xCBF29CE484222325ull;
  h = fnv1a_le(h, kTableRadius, kNumLevels);
  h = fnv1a_le(h, kTableEscapeOrder, kNumLevels);
  h = fnv1a_le(h, kTableFreqs, kTableFreqOffset[kNumLevels]);
  h = fnv1a_le(h, t.decode.data(), t.decode.size());
  return h;
}

}  // namespace jpegai::tables
