#include "factorized_coder.hpp"

#include "errors.hpp"
#include "sigma_tables.hpp"
#include "substream_coder.hpp"

namespace jpegai {
namespace {

struct ChannelModel {
  static constexpr bool kHasSkip = false;
  static constexpr bool kHasEscape = false;
  const char* field = "hyper_latent";
  int bias;  // byte = symbol index + 1 (never the escape byte 0); value = index - offset
  const FactorizedModel* m;
  size_t plane;

  ChannelModel(const FactorizedModel* model, size_t plane_size)
      : bias(model->offset() + 1), m(model), plane(plane_size) {}

  bool coded(size_t) const { return true; }
  const uint32_t* decode_table(size_t p) const {
    return &m->decode_tables()[(p / plane) << tables::kProbBits];
  }
  void symbol(size_t p, int v, uint32_t& start, uint32_t& freq, bool& escape) const {
    const size_t c = p / plane;
    const int i = v + m->offset();
    if (i < 0 || size_t(i) >= m->symbols())
      throw ArgumentError("hyper-latent value outside the model's symbol range");
    const uint16_t* cdf = &m->cdf()[c * (m->symbols() + 1)];
    start = cdf[i];
    freq = uint32_t(cdf[i + 1]) - cdf[i];
    escape = false;
  }
  void put_escape(size_t, int, BitWriter&) const {}
  int read_escape(size_t, BitReader&) const { return 0; }
  void decode_fast(detail::RunCursor&, size_t, size_t, BitReader&, int16_t*) const {}  // z is small
};

}  // namespace

FactorizedModel::FactorizedModel(const uint16_t* cdf, size_t channels, size_t symbols, int offset)
    : channels_(channels), symbols_(symbols), offset_(offset), cdf_(cdf, cdf + channels * (symbols + 1)) {
  if (channels == 0 || channels > 4096) throw ArgumentError("factorized model: channels must be in [1, 4096]");
  if (symbols < 2 || symbols > 255) throw ArgumentError("factorized model: symbols must be in [2, 255]");
  if (offset < 0 || size_t(offset) >= symbols) throw ArgumentError("factorized model: offset outside [0, symbols)");
  decode_.resize(channels * tables::kProbScale);
  for (size_t c = 0; c < channels; ++c) {
    const uint16_t* row = &cdf_[c * (symbols + 1)];
    if (row[0] != 0 || row[symbols] != tables::kProbScale)
      throw ArgumentError("factorized model: each CDF must run from 0 to 4096");
    for (size_t i = 0; i < symbols; ++i) {
      if (row[i + 1] <= row[i]) throw ArgumentError("factorized model: CDF must be strictly increasing");
      const uint32_t entry = uint32_t(row[i + 1] - row[i]) | (uint32_t(row[i]) << tables::kEntryCumShift) |
                             (uint32_t(i + 1) << tables::kEntrySymbolShift);
      for (uint32_t s = row[i]; s < row[i + 1]; ++s) decode_[(c << tables::kProbBits) + s] = entry;
    }
  }
}

std::vector<uint8_t> FactorizedModel::encode(const int16_t* values, size_t plane, uint32_t substreams,
                                             unsigned threads) const {
  const size_t n = channels_ * plane;
  return detail::encode_tensor(ChannelModel(this, plane), values, n, n,
                               substreams, threads);
}

void FactorizedModel::decode(const uint8_t* data, size_t size, size_t plane, int16_t* out,
                             unsigned threads) const {
  const size_t n = channels_ * plane;
  detail::decode_tensor(ChannelModel(this, plane), data, size, n, n, out,
                        threads);
}

}  // namespace jpegai
