#include "residual_coder.hpp"

#include <cmath>
#include <cstring>

#include "cpu_features.hpp"
#include "rans_avx2.hpp"
#include "sigma_tables.hpp"
#include "substream_coder.hpp"

namespace jpegai {
namespace {

using tables::kSkipIndex;

struct ResidualModel {
  static constexpr bool kHasSkip = true;
  static constexpr bool kHasEscape = true;
  const char* field = "residual";
  int bias = tables::kResidualSymbolBias;
  const tables::ResidualTables& t = tables::residual_tables();
  const uint8_t* index;
  bool use_avx2 = false;

  explicit ResidualModel(const uint8_t* scale_index, bool avx2 = false) : index(scale_index), use_avx2(avx2) {}

  bool coded(size_t p) const { return index[p] != kSkipIndex; }
  const uint32_t* decode_table(size_t p) const { return &t.decode[size_t(index[p]) << tables::kProbBits]; }

  void symbol(size_t p, int v, uint32_t& start, uint32_t& freq, bool& escape) const {
    const int k = index[p];
    const int r = t.radius(k);
    escape = v < -r || v > r;
    const int i = escape ? 2 * r + 1 : v + r;
    start = t.cums(k)[i];
    freq = t.freqs(k)[i];
  }
  void put_escape(size_t p, int v, BitWriter& w) const {
    const int k = index[p];
    w.put_bit(v < 0);
    const uint32_t magnitude = static_cast<uint32_t>(v < 0 ? -v : v);
    w.put_eg(magnitude - uint32_t(t.radius(k)) - 1, t.escape_order(k));
  }
  int read_escape(size_t p, BitReader& r) const {
    const int k = index[p];
    const bool negative = r.get_bit("residual.escape");
    const uint64_t magnitude = uint64_t(t.radius(k)) + 1 + r.get_eg(t.escape_order(k), "residual.escape");
    if (magnitude > (negative ? 32768u : 32767u))
      throw BitstreamError("residual.escape", "escaped value outside int16");
    return negative ? -int(magnitude) : int(magnitude);
  }
  void decode_fast(detail::RunCursor& c, size_t coded, size_t n, BitReader& bypass, int16_t* out) const {
    if (!use_avx2) return;
    const auto escape = [](const void* self, size_t p, BitReader& r) {
      return static_cast<const ResidualModel*>(self)->read_escape(p, r);
    };
    avx2::decode_residual_groups(t.decode.data(), index, bias, c, coded, n, bypass, escape, this, out);
  }
};

bool select_avx2(Kernel kernel) {
  const bool available = cpu_features().avx2;
  if (kernel == Kernel::kAvx2 && !available) throw ArgumentError("the AVX2 kernel needs a CPU with AVX2");
  return kernel == Kernel::kAvx2 || (kernel == Kernel::kAuto && available);
}

}  // namespace

size_t count_coded(const uint8_t* scale_index, size_t n) {
  size_t skipped = 0;
  bool bad = false;
  for (size_t i = 0; i < n; ++i) {  // branch-free so it vectorises
    skipped += scale_index[i] == kSkipIndex;
    bad |= scale_index[i] >= tables::kNumLevels && scale_index[i] != kSkipIndex;
  }
  if (bad) throw ArgumentError("scale_index values must be in [0, 63] or 255 (skip)");
  return n - skipped;
}

std::vector<uint8_t> encode_residual(const int16_t* symbols, const uint8_t* scale_index, size_t n,
                                     uint32_t substreams, unsigned threads) {
  const size_t coded = count_coded(scale_index, n);
  for (size_t i = 0; i < n; ++i)
    if (scale_index[i] == kSkipIndex && symbols[i] != 0)
      throw ArgumentError("a skipped position (scale index 255) must hold symbol 0");
  return detail::encode_tensor(ResidualModel(scale_index), symbols, n, coded, substreams, threads);
}

void decode_residual(const uint8_t* data, size_t size, const uint8_t* scale_index, size_t n, int16_t* out,
                     unsigned threads, Kernel kernel) {
  const ResidualModel model(scale_index, select_avx2(kernel));
  const size_t coded = count_coded(scale_index, n);
  detail::decode_tensor(model, data, size, n, coded, out, threads);
}

double residual_information_bits(const int16_t* symbols, const uint8_t* scale_index, size_t n) {
  count_coded(scale_index, n);
  const tables::ResidualTables& t = tables::residual_tables();
  double bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int k = scale_index[i];
    if (k == kSkipIndex) continue;
    const int r = t.radius(k);
    const int v = symbols[i];
    const bool escape = v < -r || v > r;
    bits += tables::kProbBits - std::log2(double(t.freqs(k)[escape ? 2 * r + 1 : v + r]));
    if (escape) {  // sign + Exp-Golomb(order g) of m: 2 floor(log2(m/2^g + 1)) + 1 + g bits
      const int g = t.escape_order(k);
      const uint32_t m = uint32_t(v < 0 ? -v : v) - uint32_t(r) - 1;
      int prefix = 0;
      while (((m >> g) + 1) >> (prefix + 1)) ++prefix;
      bits += 1 + 2 * prefix + 1 + g;
    }
  }
  return bits;
}

}  // namespace jpegai
