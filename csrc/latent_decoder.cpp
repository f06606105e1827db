#include "latent_decoder.hpp"

#include <chrono>
#include <string>

#include "bitio.hpp"
#include "errors.hpp"
#include "residual_coder.hpp"
#include "sigma_tables.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

const char* const kComponentName[2] = {"luma", "chroma"};

int ceil_div(int a, int b) { return (a + b - 1) / b; }

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point& t) {  // seconds from t to now; t becomes now
  const Clock::time_point now = Clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

std::vector<uint32_t> u32(std::initializer_list<int> dims) {
  std::vector<uint32_t> v;
  for (int d : dims) v.push_back(uint32_t(d));
  return v;
}

}  // namespace

LatentModel::LatentModel(const ModelBlob& blob) {
  const std::vector<int32_t> channels = blob.int32("meta.channels", {2});
  const std::vector<int32_t> consts = blob.int32("meta.consts", {6});
  // consts: skip threshold, z offset, z symbols, rate points, Q7, probability bits
  skip_below_ = consts[0];
  rate_points_ = consts[3];
  const int z_offset = consts[1], z_symbols = consts[2];
  if (skip_below_ < 0 || skip_below_ > tables::kNumLevels) throw ArgumentError("model: skip threshold out of range");
  if (consts[4] != 1 << tables::kLogSigmaFracBits || consts[5] != tables::kProbBits)
    throw ArgumentError("model: Q7 / probability precision do not match this decoder");
  if (rate_points_ < 1 || rate_points_ > 256) throw ArgumentError("model: rate points out of range");
  for (int c = 0; c < 2; ++c) {
    const std::string n = std::string("hsd.") + kComponentName[c] + ".";
    const int ch = channels[c];
    if (ch < 1 || ch > int(kMaxLatentChannels)) throw ArgumentError("model: channel count out of range");
    ComponentModel& m = comp_[c];
    m.channels = ch;
    IntConvLayer layers[3];
    const int outs[3] = {ch, ch, 16 * ch}, ks[3] = {1, 3, 1};
    for (int l = 0; l < 3; ++l) {
      const std::string conv = n + "conv" + std::to_string(l + 1);
      layers[l].in = ch;
      layers[l].out = outs[l];
      layers[l].k = ks[l];
      layers[l].weight = blob.int8(conv + ".weight", u32({outs[l], ch, ks[l], ks[l]}));
      layers[l].bias = blob.int32(conv + ".bias", u32({outs[l]}));
      layers[l].shift = blob.int8(conv + ".shift", u32({outs[l]}));
    }
    m.hsd = std::make_unique<HyperScaleDecoder>(std::move(layers[0]), std::move(layers[1]), std::move(layers[2]));
    const std::vector<uint16_t> cdf =
        blob.uint16(std::string("zcdf.") + kComponentName[c], u32({ch, z_symbols + 1}));
    m.z_model = std::make_unique<FactorizedModel>(cdf.data(), size_t(ch), size_t(z_symbols), z_offset);
    m.gain_q7 = blob.int32(std::string("gain.") + kComponentName[c] + ".q7", u32({rate_points_, ch}));
  }
}

PictureLatents decode_latents(const LatentModel& model, const uint8_t* data, size_t size, uint64_t max_pixels,
                              unsigned threads) {
  Clock::time_point t = Clock::now();
  const Codestream cs = parse_codestream(data, size, max_pixels);
  PictureLatents out;
  out.header = cs.header;
  const PictureHeader& h = out.header;
  out.latent_h = ceil_div(int(h.height), kLatentStride);
  out.latent_w = ceil_div(int(h.width), kLatentStride);
  out.z_h = ceil_div(out.latent_h, kHyperStride);
  out.z_w = ceil_div(out.latent_w, kHyperStride);
  if (h.rate_point >= model.rate_points()) throw BitstreamError("rate_point", "the model has no such rate point");
  const uint32_t latent_channels[2] = {h.latent_channels_luma, h.latent_channels_chroma};
  const uint32_t coded_channels[2] = {h.coded_channels_luma, h.coded_channels_chroma};
  const int32_t displacement[2] = {h.gain_log_luma, h.gain_log_chroma};
  for (int c = 0; c < 2; ++c)
    if (int(latent_channels[c]) != model.component(c).channels)
      throw BitstreamError(c ? "latent_channels_chroma" : "latent_channels_luma", "does not match the model");
  for (uint16_t marker : {uint16_t(Marker::kSOZ), uint16_t(Marker::kSORP), uint16_t(Marker::kSORS)})
    if (!cs.payloads.count(marker)) throw BitstreamError(marker_name(marker), "missing segment");

  // SOZ: the luma part's length, then both parts.
  const auto [soz_at, soz_size] = cs.payloads.at(uint16_t(Marker::kSOZ));
  BitReader soz(data + soz_at, soz_size);
  const uint32_t luma_z_bytes = soz.get_ue("SOZ");
  soz.align("SOZ");
  const size_t z_begin = soz.byte_position();
  if (luma_z_bytes > soz_size - z_begin) throw BitstreamError("SOZ", "luma part longer than the segment");
  const std::pair<size_t, size_t> z_span[2] = {{soz_at + z_begin, luma_z_bytes},
                                               {soz_at + z_begin + luma_z_bytes, soz_size - z_begin - luma_z_bytes}};
  const std::pair<size_t, size_t> r_span[2] = {cs.payloads.at(uint16_t(Marker::kSORP)),
                                               cs.payloads.at(uint16_t(Marker::kSORS))};

  const size_t z_plane = size_t(out.z_h) * out.z_w, plane = size_t(out.latent_h) * out.latent_w;
  const unsigned inner = threads;  // nested calls share the pool and the same cap
  out.seconds.parse = seconds_since(t);
  global_pool().parallel_for(2, threads, [&](size_t c) {
    const ComponentModel& m = model.component(int(c));
    ComponentLatents& L = out.comp[c];
    L.channels = m.channels;
    L.z.resize(size_t(m.channels) * z_plane);
    m.z_model->decode(data + z_span[c].first, z_span[c].second, z_plane, L.z.data(), inner);
  });
  out.seconds.z = seconds_since(t);
  global_pool().parallel_for(2, threads, [&](size_t c) {
    const ComponentModel& m = model.component(int(c));
    ComponentLatents& L = out.comp[c];
    L.log_sigma.resize(size_t(m.channels) * plane);
    m.hsd->forward(L.z.data(), out.z_h, out.z_w, out.latent_h, out.latent_w, L.log_sigma.data(), inner);
    std::vector<int32_t> gain(m.gain_q7.begin() + size_t(h.rate_point) * m.channels,
                              m.gain_q7.begin() + size_t(h.rate_point + 1) * m.channels);
    for (int32_t& g : gain) g += displacement[c];
    for (size_t ch = 0; ch < size_t(m.channels); ++ch)
      for (size_t i = 0; i < plane; ++i) L.log_sigma[ch * plane + i] += gain[ch];
    L.index.resize(L.log_sigma.size());
    const std::vector<int32_t> no_gain(size_t(m.channels), 0);
    tables::scale_index_map(L.log_sigma.data(), no_gain.data(), size_t(m.channels), plane, model.skip_below(),
                            L.index.data());
    std::fill(L.index.begin() + size_t(coded_channels[c]) * plane, L.index.end(), tables::kSkipIndex);
  });
  out.seconds.hyper_scale = seconds_since(t);
  global_pool().parallel_for(2, threads, [&](size_t c) {
    ComponentLatents& L = out.comp[c];
    L.residual.resize(L.index.size());
    decode_residual(data + r_span[c].first, r_span[c].second, L.index.data(), L.index.size(), L.residual.data(),
                    inner);
  });
  out.seconds.residual = seconds_since(t);
  return out;
}

}  // namespace jpegai
