#include "latent_decoder.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
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
  z_offset_ = consts[1];
  const int z_symbols = consts[2];
  if (skip_below_ < 0 || skip_below_ > tables::kNumLevels) throw ArgumentError("model: skip threshold out of range");
  if (consts[4] != 1 << tables::kLogSigmaFracBits || consts[5] != tables::kProbBits)
    throw ArgumentError("model: Q7 / probability precision do not match this decoder");
  if (rate_points_ < 1 || rate_points_ > 256) throw ArgumentError("model: rate points out of range");
  if (blob.has("meta.model_id")) {
    model_id_ = blob.int32("meta.model_id", {1})[0];
    if (model_id_ < 1 || model_id_ > 255) throw ArgumentError("model: meta.model_id outside [1, 255]");
  }
  if (!blob.has("mean.y_frac"))
    throw ArgumentError("model: no fixed-point mean path (mean.*): float-mean models are not supported");
  const std::vector<int32_t> grid = blob.has("meta.grid") ? blob.int32("meta.grid", {2})
                                                          : std::vector<int32_t>{kLatentStride, kLatentStride};
  for (int c = 0; c < 2; ++c) {
    const std::string n = std::string("hsd.") + kComponentName[c] + ".";
    const int ch = channels[c];
    if (ch < 1 || ch > int(kMaxLatentChannels)) throw ArgumentError("model: channel count out of range");
    if (grid[c] != 16 && grid[c] != 32) throw ArgumentError("model: meta.grid must be 16 or 32");
    ComponentModel& m = comp_[c];
    m.channels = ch;
    m.grid = grid[c];
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
    m.z_model = std::make_unique<FactorizedModel>(cdf.data(), size_t(ch), size_t(z_symbols), z_offset_);
    m.gain_q7 = blob.int32(std::string("gain.") + kComponentName[c] + ".q7", u32({rate_points_, ch}));
    m.gain_f32 = blob.float32(std::string("gain.") + kComponentName[c] + ".f32", u32({rate_points_, ch}));
  }
  mean_ = std::make_unique<MeanPath>(blob, channels[0], channels[1]);
}

LatentSize LatentModel::latent_size(int c, uint32_t height, uint32_t width) const {
  LatentSize s;
  s.h = ceil_div(int(height), comp_[c].grid);
  s.w = ceil_div(int(width), comp_[c].grid);
  s.z_h = ceil_div(s.h, kHyperStride);
  s.z_w = ceil_div(s.w, kHyperStride);
  return s;
}

std::vector<int32_t> LatentModel::offsets(int c, uint32_t rate_point, int32_t displacement) const {
  const ComponentModel& m = comp_[c];
  if (rate_point >= uint32_t(rate_points_)) throw ArgumentError("rate point out of range");
  std::vector<int32_t> o(m.gain_q7.begin() + size_t(rate_point) * m.channels,
                         m.gain_q7.begin() + size_t(rate_point + 1) * m.channels);
  for (int32_t& g : o) g += displacement;
  return o;
}

namespace {

// HSD output + gain offsets -> scale indices, with skip and the header's coded-channel limit.
void index_map(const LatentModel& model, int c, const int32_t* s, const std::vector<int32_t>& offsets, size_t plane,
               uint32_t coded_channels, uint8_t* index) {
  const int C = model.component(c).channels;
  tables::scale_index_map(s, offsets.data(), size_t(C), plane, model.skip_below(), index);
  std::fill(index + size_t(coded_channels) * plane, index + size_t(C) * plane, tables::kSkipIndex);
}

}  // namespace

PictureLatents decode_latents(const LatentModel& model, const uint8_t* data, size_t size, uint64_t max_pixels,
                              unsigned threads, bool inspect) {
  Clock::time_point t = Clock::now();
  const Codestream cs = parse_codestream(data, size, max_pixels);
  PictureLatents out;
  out.header = cs.header;
  out.window = cs.window;
  const PictureHeader& h = out.header;
  if (h.model_id != model.model_id())
    throw BitstreamError("model_id", "the stream was made by model " + std::to_string(h.model_id) +
                                         ", this decoder holds model " + std::to_string(model.model_id()));
  if (h.rate_point >= uint32_t(model.rate_points())) throw BitstreamError("rate_point", "the model has no such rate point");
  const uint32_t latent_channels[2] = {h.latent_channels_luma, h.latent_channels_chroma};
  const uint32_t coded_channels[2] = {h.coded_channels_luma, h.coded_channels_chroma};
  const int32_t displacement[2] = {h.gain_log_luma, h.gain_log_chroma};
  for (int c = 0; c < 2; ++c)
    if (int(latent_channels[c]) != model.component(c).channels)
      throw BitstreamError(c ? "latent_channels_chroma" : "latent_channels_luma", "does not match the model");
  // 4:0:0 (monochrome): luma only -- no SORS (the container refuses one), an empty chroma part of SOZ, and
  // comp[1] left empty (channels 0)
  const int components = h.chroma_format == 0 ? 1 : 2;
  for (uint16_t marker : {uint16_t(Marker::kSOZ), uint16_t(Marker::kSORP), uint16_t(Marker::kSORS)})
    if (!cs.payloads.count(marker) && (components == 2 || marker != uint16_t(Marker::kSORS)))
      throw BitstreamError(marker_name(marker), "missing segment");

  // SOZ: the luma part's length, then both parts.
  const auto [soz_at, soz_size] = cs.payloads.at(uint16_t(Marker::kSOZ));
  BitReader soz(data + soz_at, soz_size);
  const uint32_t luma_z_bytes = soz.get_ue("SOZ");
  soz.align("SOZ");
  const size_t z_begin = soz.byte_position();
  if (luma_z_bytes > soz_size - z_begin) throw BitstreamError("SOZ", "luma part longer than the segment");
  const std::pair<size_t, size_t> z_span[2] = {{soz_at + z_begin, luma_z_bytes},
                                               {soz_at + z_begin + luma_z_bytes, soz_size - z_begin - luma_z_bytes}};
  if (components == 1 && z_span[1].second != 0)
    throw BitstreamError("SOZ", "a 4:0:0 (monochrome) stream has no chroma part of z");
  const std::pair<size_t, size_t> r_span[2] = {
      cs.payloads.at(uint16_t(Marker::kSORP)),
      components == 2 ? cs.payloads.at(uint16_t(Marker::kSORS)) : std::pair<size_t, size_t>{0, 0}};
  // gains first: a displacement outside the decodable range is a stream error before any work
  std::vector<int32_t> offsets[2];
  for (int c = 0; c < components; ++c) {
    out.comp[c].channels = model.component(c).channels;
    out.comp[c].size = model.latent_size(c, h.height, h.width);
    offsets[c] = model.offsets(c, h.rate_point, displacement[c]);
  }
  const unsigned inner = threads;  // nested calls share the pool and the same cap
  out.seconds.parse = seconds_since(t);
  auto each_component = [&](auto&& stage) {
    global_pool().parallel_for(size_t(components), threads, [&](size_t c) { stage(int(c)); });
  };
  each_component([&](int c) {
    ComponentLatents& L = out.comp[c];
    const size_t z_plane = size_t(L.size.z_h) * L.size.z_w;
    L.z.resize(size_t(L.channels) * z_plane);
    model.component(c).z_model->decode(data + z_span[c].first, z_span[c].second, z_plane, L.z.data(), inner);
  });
  out.seconds.z = seconds_since(t);
  each_component([&](int c) {
    ComponentLatents& L = out.comp[c];
    const size_t plane = size_t(L.size.h) * L.size.w;
    L.log_sigma.resize(size_t(L.channels) * plane);
    model.component(c).hsd->forward(L.z.data(), L.size.z_h, L.size.z_w, L.size.h, L.size.w, L.log_sigma.data(), inner);
    L.index.resize(L.log_sigma.size());
    index_map(model, c, L.log_sigma.data(), offsets[c], plane, coded_channels[c], L.index.data());
    if (inspect) {  // the gain-applied Q7 log-sigma, as the entropy model sees it
      for (size_t ch = 0; ch < size_t(L.channels); ++ch)
        for (size_t i = 0; i < plane; ++i) L.log_sigma[ch * plane + i] += offsets[c][ch];
    } else {
      std::vector<int32_t>().swap(L.log_sigma);
    }
  });
  out.seconds.hyper_scale = seconds_since(t);
  each_component([&](int c) {
    ComponentLatents& L = out.comp[c];
    L.residual.resize(L.index.size());
    decode_residual(data + r_span[c].first, r_span[c].second, L.index.data(), L.index.size(), L.residual.data(),
                    inner);
  });
  out.seconds.residual = seconds_since(t);
  Tensor16 psi[2];
  each_component([&](int c) {
    const ComponentLatents& L = out.comp[c];
    psi[c] = model.mean_path().hyper_decoder(c, L.z.data(), L.size.z_h, L.size.z_w, L.size.h, L.size.w, inner);
  });
  out.seconds.hyper_decoder = seconds_since(t);
  each_component([&](int c) {
    ComponentLatents& L = out.comp[c];
    std::vector<int16_t> q(L.index.size());
    model.mean_path().reconstruct(c, psi[c], L.index.data(), offsets[c].data(), L.size.h, L.size.w, L.residual.data(),
                                  nullptr, nullptr, nullptr, q.data(), inner);
    Tensor16().v.swap(psi[c].v);
    const float scale = std::ldexp(1.0f, -model.mean_path().y_frac(c));
    L.y_hat.resize(q.size());
    for (size_t i = 0; i < q.size(); ++i) L.y_hat[i] = float(q[i]) * scale;  // exact: |q| < 2^15
    if (!inspect) {
      std::vector<int16_t>().swap(L.z);
      std::vector<uint8_t>().swap(L.index);
      std::vector<int16_t>().swap(L.residual);
    }
  });
  out.seconds.context = seconds_since(t);
  return out;
}

PreparedLatents::PreparedLatents(const LatentModel& model, uint32_t height, uint32_t width, const int16_t* const z[2],
                                 const float* const y[2], unsigned threads)
    : model_(model) {
  if (height < 1 || width < 1) throw ArgumentError("picture size must be positive");
  if ((z[1] == nullptr) != (y[1] == nullptr)) throw ArgumentError("chroma z and y: both or neither (monochrome)");
  components_ = z[1] == nullptr ? 1 : 2;
  for (int c = 0; c < components_; ++c) {
    const int C = model.component(c).channels;
    size_[c] = model.latent_size(c, height, width);
    const LatentSize& s = size_[c];
    const size_t z_n = size_t(C) * s.z_h * s.z_w, n = size_t(C) * s.h * s.w;
    z_[c].assign(z[c], z[c] + z_n);
    for (int16_t v : z_[c])
      if (v < -model.z_offset() || v > model.z_offset()) throw ArgumentError("z_hat outside the z alphabet");
    y_[c].assign(y[c], y[c] + n);
    s_[c].resize(n);
  }
  global_pool().parallel_for(size_t(components_), threads, [&](size_t c) {
    const LatentSize& s = size_[c];
    model.component(int(c)).hsd->forward(z_[c].data(), s.z_h, s.z_w, s.h, s.w, s_[c].data(), threads);
    psi_[c] = model.mean_path().hyper_decoder(int(c), z_[c].data(), s.z_h, s.z_w, s.h, s.w, threads);
  });
}

PreparedLatents::Payloads PreparedLatents::code(uint32_t rate_point, const int32_t displacement[2],
                                                const float* const gains[2], uint32_t substreams,
                                                unsigned threads) const {
  std::vector<uint8_t> residual_payload[2], z_payload[2];  // monochrome: the chroma ones stay empty
  global_pool().parallel_for(size_t(components_), threads, [&](size_t c) {
    const LatentModel& m = model_;
    const ComponentModel& cm = m.component(int(c));
    const LatentSize& s = size_[c];
    const size_t plane = size_t(s.h) * s.w, n = size_t(cm.channels) * plane;
    const std::vector<int32_t> offsets = m.offsets(int(c), rate_point, displacement[c]);
    std::vector<uint8_t> index(n);
    index_map(m, int(c), s_[c].data(), offsets, plane, uint32_t(cm.channels), index.data());
    // g: the trained float32 gains at a rate point (gains == nullptr), else the caller's
    const float* gain = gains[c] ? gains[c] : cm.gain_f32.data() + size_t(rate_point) * cm.channels;
    if (!gains[c] && displacement[c] != 0) throw ArgumentError("a gain displacement needs the displaced gains");
    std::vector<int16_t> residual(n), y_hat(n);
    m.mean_path().reconstruct(int(c), psi_[c], index.data(), offsets.data(), s.h, s.w, nullptr, y_[c].data(),
                              gain, residual.data(), y_hat.data(), threads);
    residual_payload[c] = encode_residual(residual.data(), index.data(), n, substreams, threads);
    z_payload[c] = cm.z_model->encode(z_[c].data(), size_t(s.z_h) * s.z_w, substreams, threads);
  });
  Payloads p;
  BitWriter head;
  head.put_ue(uint32_t(z_payload[0].size()));
  p.soz = head.finish();
  p.soz.insert(p.soz.end(), z_payload[0].begin(), z_payload[0].end());
  p.soz.insert(p.soz.end(), z_payload[1].begin(), z_payload[1].end());
  p.sorp = std::move(residual_payload[0]);
  p.sors = std::move(residual_payload[1]);
  return p;
}

}  // namespace jpegai
