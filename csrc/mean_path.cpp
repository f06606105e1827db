#include "mean_path.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

constexpr int kSkip = 255;
constexpr int kMaxFrac = 15;               // int16 with at most 15 fraction bits
constexpr int64_t kAccLimit = int64_t{1} << 31;
// Luma context stages: phase (row, col) of stage s in the 2x2 cell; stage_of[2*dy+dx] the inverse.
constexpr int kStageDy[4] = {0, 1, 0, 1}, kStageDx[4] = {0, 1, 1, 0};
constexpr int kStageOfPhase[4] = {0, 2, 3, 1};
// Transposed conv k4 s2 p1: output row Y takes kernel rows ky with Y + 1 - ky even, from input row
// (Y + 1 - ky) / 2.  Per output parity the two taps, listed with their input offset from Y >> 1.
constexpr int kTapK[2][2] = {{1, 3}, {0, 2}};
constexpr int kTapOff[2][2] = {{0, -1}, {1, 0}};

int16_t sat16(int64_t v) { return int16_t(std::min<int64_t>(std::max<int64_t>(v, -32768), 32767)); }

int64_t round_shift(int64_t v, int s) { return s > 0 ? (v + (int64_t{1} << (s - 1))) >> s : v; }

int16_t requant(int16_t v, int from, int to) {
  return from >= to ? sat16(round_shift(v, from - to)) : sat16(int64_t(v) << (to - from));
}

int16_t activate(int64_t v, MeanActivation act, int frac_out) {
  int16_t x = sat16(v);
  if (act == MeanActivation::kNone) return x;
  if (act == MeanActivation::kLeakyRelu) return x < 0 ? int16_t((int32_t(x) * 41 + 2048) >> 12) : x;
  if (x < 0) return 0;
  if (act == MeanActivation::kRelu6) x = int16_t(std::min<int32_t>(x, std::min<int32_t>(6 << frac_out, 32767)));
  return x;
}

// Four output pixels against one weight row: the fast kernel's inner loop.  One clone per ISA
// (picked at load time), each auto-vectorised; every clone computes the same exact integer sums.
inline __attribute__((always_inline)) void gemm_rows_body(const int16_t* col, int pixels, int K, size_t col_stride,
                                                          const int16_t* weight, int outs, int32_t* acc,
                                                          size_t acc_stride) {
  for (int o = 0; o < outs; ++o) {
    const int16_t* w = weight + size_t(o) * K;
    int p = 0;
    for (; p + 4 <= pixels; p += 4) {
      const int16_t *a0 = col + size_t(p) * col_stride, *a1 = a0 + col_stride, *a2 = a1 + col_stride,
                    *a3 = a2 + col_stride;
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int k = 0; k < K; ++k) {
        const int32_t wk = w[k];
        s0 += int32_t(a0[k]) * wk;
        s1 += int32_t(a1[k]) * wk;
        s2 += int32_t(a2[k]) * wk;
        s3 += int32_t(a3[k]) * wk;
      }
      acc[size_t(p) * acc_stride + o] = s0;
      acc[size_t(p + 1) * acc_stride + o] = s1;
      acc[size_t(p + 2) * acc_stride + o] = s2;
      acc[size_t(p + 3) * acc_stride + o] = s3;
    }
    for (; p < pixels; ++p) {
      const int16_t* a = col + size_t(p) * col_stride;
      int32_t s = 0;
      for (int k = 0; k < K; ++k) s += int32_t(a[k]) * int32_t(w[k]);
      acc[size_t(p) * acc_stride + o] = s;
    }
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void gemm_rows(
    const int16_t* col, int pixels, int K, size_t col_stride, const int16_t* weight, int outs, int32_t* acc,
    size_t acc_stride) {
  gemm_rows_body(col, pixels, K, col_stride, weight, outs, acc, acc_stride);
}

// The same loops without clones: the baseline twin run under the forced-baseline switch
// (JPEGAI_FAST_SIMD=scalar), so tests compare every clone with it on one machine.
void gemm_rows_baseline(const int16_t* col, int pixels, int K, size_t col_stride, const int16_t* weight, int outs,
                        int32_t* acc, size_t acc_stride) {
  gemm_rows_body(col, pixels, K, col_stride, weight, outs, acc, acc_stride);
}

using GemmRows = void (*)(const int16_t*, int, int, size_t, const int16_t*, int, int32_t*, size_t);

GemmRows gemm_kernel() { return cpu_features().baseline_only ? gemm_rows_baseline : gemm_rows; }

std::vector<uint32_t> u32(std::initializer_list<int> dims) {
  std::vector<uint32_t> v;
  for (int d : dims) v.push_back(uint32_t(d));
  return v;
}

}  // namespace

MeanLayer load_mean_layer(const ModelBlob& blob, const std::string& prefix, int in, int out) {
  const std::vector<int32_t> meta = blob.int32(prefix + ".meta", {6});
  if (out < 0) {
    const BlobSection& w = blob.section(prefix + ".weight");
    if (w.shape.size() != 4 || w.shape[0] < 1 || w.shape[0] > 4096)
      throw ArgumentError("model: " + prefix + ".weight: bad shape");
    out = int(w.shape[0]);
  }
  MeanLayer L;
  L.kind = MeanLayerKind(meta[0]);
  L.k = meta[1];
  L.groups = meta[2];
  L.frac_in = meta[3];
  L.frac_out = meta[4];
  L.act = MeanActivation(meta[5]);
  L.in = in;
  L.out = out;
  const std::string n = "model: " + prefix;
  if (meta[0] < 0 || meta[0] > 1 || meta[5] < 0 || meta[5] > 3) throw ArgumentError(n + ": unknown kind/activation");
  if (L.kind == MeanLayerKind::kConvTranspose4x4s2 ? (L.k != 4 || L.groups != 1) : (L.k != 1 && L.k != 3))
    throw ArgumentError(n + ": unsupported kernel size");
  if (L.groups < 1 || in % L.groups || out % L.groups) throw ArgumentError(n + ": bad group count");
  if (L.frac_in < 0 || L.frac_in > kMaxFrac || L.frac_out < 0 || L.frac_out > kMaxFrac)
    throw ArgumentError(n + ": fraction bits outside [0, 15]");
  const int in_g = in / L.groups, taps = L.k * L.k;
  L.weight = blob.int8(prefix + ".weight", u32({out, in_g, L.k, L.k}));
  L.bias = blob.int32(prefix + ".bias", u32({out}));
  L.shift = blob.int8(prefix + ".shift", u32({out}));
  for (int o = 0; o < out; ++o) {
    if (L.shift[o] < 0 || L.shift[o] > 31) throw ArgumentError(n + ": shift outside [0, 31]");
    int64_t worst = std::llabs(int64_t(L.bias[o]));
    for (int i = 0; i < in_g * taps; ++i) worst += 32768 * std::llabs(int64_t(L.weight[size_t(o) * in_g * taps + i]));
    if (worst >= kAccLimit) throw ArgumentError(n + ": int32 accumulator could overflow");
  }
  if (L.kind == MeanLayerKind::kConv) {  // out x taps x in_g
    L.packed.resize(L.weight.size());
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in_g; ++i)
        for (int t = 0; t < taps; ++t)
          L.packed[(size_t(o) * taps + t) * in_g + i] = L.weight[(size_t(o) * in_g + i) * taps + t];
  } else {  // per output parity (py, px): out x 4 taps (a, b) x in
    L.packed.resize(size_t(4) * out * 4 * in);
    for (int py = 0; py < 2; ++py)
      for (int px = 0; px < 2; ++px)
        for (int o = 0; o < out; ++o)
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b)
              for (int i = 0; i < in; ++i)
                L.packed[(((size_t(py * 2 + px) * out + o) * 4) + a * 2 + b) * in + i] =
                    L.weight[((size_t(o) * in + i) * 4 + kTapK[py][a]) * 4 + kTapK[px][b]];
  }
  return L;
}

InverseGain inverse_gain(int32_t t) {
  // 1/g = 2^(-t * LOG_STEP / (128 ln 2)); A = that exponent in Q32 (floor of the product with the Q32
  // constant), split into an integer n and a fraction phi; 2^phi = e^(phi ln 2) by a 12-term Horner
  // sum in Q30 (relative error < 1e-6 of exp, from the Q32 constant: far below one step of y_hat).
  // Pure integer: identical everywhere.
  constexpr int64_t kLog2PerQ7 = 4842126;       // round(2^32 * ln(60/0.11) / 63 / 128 / ln 2)
  constexpr uint64_t kLn2Q32 = 2977044472u;     // round(2^32 * ln 2)
  constexpr uint64_t kOne = uint64_t{1} << 30;
  const int64_t A = -int64_t(t) * kLog2PerQ7;
  const int64_t n = A >> 32;  // floor
  const uint64_t phi = uint64_t(A - n * (int64_t{1} << 32));
  const uint64_t U = (phi * kLn2Q32) >> 34;  // phi * ln2 in Q30, in [0, ln 2)
  uint64_t acc = kOne;
  for (uint64_t k = 12; k >= 1; --k) acc = kOne + ((U * acc) >> 30) / k;
  return {int64_t(acc), int(n)};
}

Tensor16 run_mean_layer(const MeanLayer& L, const Tensor16& x, int out_h, int out_w, unsigned threads) {
  if (x.c != L.in) throw ArgumentError("mean layer: input channels do not match");
  const bool transposed = L.kind == MeanLayerKind::kConvTranspose4x4s2;
  if (transposed ? (out_h > 2 * x.h || out_w > 2 * x.w) : (out_h != x.h || out_w != x.w))
    throw ArgumentError("mean layer: output size does not match");
  Tensor16 y;
  y.h = out_h;
  y.w = out_w;
  y.c = L.out;
  y.v.assign(size_t(out_h) * out_w * L.out, 0);
  const int in = L.in, in_g = in / L.groups, out_g = L.out / L.groups;
  const int taps = transposed ? 4 : L.k * L.k, r = L.k / 2;
  const int K = taps * in_g;  // one group's im2col row
  const size_t col_stride = size_t(taps) * in;
  const GemmRows gemm = gemm_kernel();
  global_pool().parallel_for(size_t(out_h), threads, [&](size_t row) {
    const int Y = int(row);
    // im2col of the row: pixel X -> [group][tap][in_g], zero where a tap falls outside the input.
    std::vector<int16_t> col(size_t(out_w) * col_stride, 0);
    std::vector<int32_t> acc(size_t(out_w) * L.out);
    for (int X = 0; X < out_w; ++X) {
      int16_t* c = col.data() + size_t(X) * col_stride;
      for (int t = 0; t < taps; ++t) {
        int iy, ix;
        if (transposed) {
          iy = (Y >> 1) + kTapOff[Y & 1][t >> 1];
          ix = (X >> 1) + kTapOff[X & 1][t & 1];
        } else {
          iy = Y + t / L.k - r;
          ix = X + t % L.k - r;
        }
        if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
        const int16_t* src = x.v.data() + (size_t(iy) * x.w + ix) * in;
        for (int g = 0; g < L.groups; ++g)
          std::copy(src + g * in_g, src + (g + 1) * in_g, c + (size_t(g) * taps + t) * in_g);
      }
    }
    if (transposed) {  // the two column parities use different weight sets: even X, then odd X
      for (int px = 0; px < 2; ++px) {
        const int16_t* W = L.packed.data() + size_t((Y & 1) * 2 + px) * L.out * 4 * in;
        const int n = (out_w - px + 1) / 2;
        if (n > 0)
          gemm(col.data() + size_t(px) * col_stride, n, K, 2 * col_stride, W, L.out,
                    acc.data() + size_t(px) * L.out, 2 * size_t(L.out));
      }
    } else {
      for (int g = 0; g < L.groups; ++g)
        gemm(col.data() + size_t(g) * K, out_w, K, col_stride, L.packed.data() + size_t(g) * out_g * K, out_g,
                  acc.data() + size_t(g) * out_g, size_t(L.out));
    }
    int16_t* dst = y.v.data() + size_t(Y) * out_w * L.out;
    for (int X = 0; X < out_w; ++X)
      for (int o = 0; o < L.out; ++o) {
        const int64_t a = int64_t(acc[size_t(X) * L.out + o]) + L.bias[o];
        dst[size_t(X) * L.out + o] = activate(round_shift(a, L.shift[o]), L.act, L.frac_out);
      }
  });
  return y;
}

namespace {

Tensor16 run_chain(const std::vector<MeanLayer>& layers, Tensor16 x, unsigned threads) {
  for (const MeanLayer& L : layers) x = run_mean_layer(L, x, x.h, x.w, threads);
  return x;
}

// Channels [c0, c0 + n) of an HWC tensor, requantised from frac `from` to `to`, written at channel
// offset `at` of dst (which has dst.c channels and the same h, w).
void copy_channels(const Tensor16& src, int c0, int n, int from, int to, Tensor16& dst, int at) {
  const size_t pixels = size_t(src.h) * src.w;
  for (size_t p = 0; p < pixels; ++p)
    for (int c = 0; c < n; ++c)
      dst.v[p * dst.c + at + c] = requant(src.v[p * src.c + c0 + c], from, to);
}

Tensor16 empty(int h, int w, int c) {
  Tensor16 t;
  t.h = h;
  t.w = w;
  t.c = c;
  t.v.assign(size_t(h) * w * c, 0);
  return t;
}

}  // namespace

MeanPath::MeanPath(const ModelBlob& blob, int luma_channels, int chroma_channels)
    : channels_{luma_channels, chroma_channels} {
  const std::vector<int32_t> yf = blob.int32("mean.y_frac", {2});
  const char* comp_name[2] = {"luma", "chroma"};
  // topology: hyper-mean output form, context residual, layer count luma, chroma (absent: psi form, the
  // four named layers c1, up, c2, c3, no residual -- the format of the first fixed-point models)
  int layers[2] = {4, 4};
  if (blob.has("mean.topology")) {
    const std::vector<int32_t> t = blob.int32("mean.topology", {4});
    if (t[0] < 0 || t[0] > 1 || t[1] < 0 || t[1] > 1) throw ArgumentError("model: mean.topology: unknown form");
    hyper_output_ = HyperMeanOutput(t[0]);
    context_residual_ = t[1] != 0;
    for (int c = 0; c < 2; ++c) {
      if (t[2 + c] < 1 || t[2 + c] > 16) throw ArgumentError("model: mean.topology: 1..16 hyper-mean layers");
      layers[c] = t[2 + c];
    }
  }
  for (int c = 0; c < 2; ++c) {
    const int C = channels_[c];
    y_frac_[c] = yf[c];
    if (yf[c] < 0 || yf[c] > kMaxFrac) throw ArgumentError("model: mean.y_frac outside [0, 15]");
    const std::string p = std::string("mean.hd_") + comp_name[c] + ".";
    const bool named = !blob.has("mean.topology");
    const char* names[4] = {"c1", "up", "c2", "c3"};
    int in = C;
    for (int l = 0; l < layers[c]; ++l) {
      const bool last = l == layers[c] - 1;
      const int out = named ? (last ? 4 * C : C) : -1;
      hyper_[c].push_back(load_mean_layer(blob, p + (named ? names[l] : std::to_string(l)), in, out));
      in = hyper_[c].back().out;
      if (hyper_[c].back().groups != 1) throw ArgumentError("model: grouped hyper-mean layers are not supported");
      if (l > 0 && hyper_[c][l].frac_in != hyper_[c][l - 1].frac_out)
        throw ArgumentError("model: hyper-mean decoder fraction bits do not chain");
    }
    if (hyper_[c][0].frac_in != 0) throw ArgumentError("model: the hyper-mean decoder reads z_hat at frac 0");
    if (named && (hyper_[c][1].kind != MeanLayerKind::kConvTranspose4x4s2 || hyper_[c][0].kind != MeanLayerKind::kConv ||
                  hyper_[c][2].kind != MeanLayerKind::kConv || hyper_[c][3].kind != MeanLayerKind::kConv))
      throw ArgumentError("model: hyper-mean decoder layers do not have the expected kinds");
    int ups = 0;
    for (const MeanLayer& L : hyper_[c]) ups += L.kind == MeanLayerKind::kConvTranspose4x4s2;
    // psi is on the half latent grid (1 up-sampling from z at a quarter), mu on the latent grid (2)
    const int want_ups = hyper_output_ == HyperMeanOutput::kPsi ? 1 : 2;
    const int want_out = hyper_output_ == HyperMeanOutput::kPsi ? 4 * C : C;
    if (ups != want_ups || in != want_out)
      throw ArgumentError("model: hyper-mean decoder output does not match its form");
  }
  const int C = channels_[0];
  for (int s = 0; s < 4; ++s) {
    const std::string f = "mean.fuse" + std::to_string(s) + ".";
    fusion_[s].push_back(load_mean_layer(blob, f + "a", s ? 2 * C : C, C));
    fusion_[s].push_back(load_mean_layer(blob, f + "b", C, C));
    fusion_[s].push_back(load_mean_layer(blob, f + "c", C, C));
    if (fusion_[s][1].frac_in != fusion_[s][0].frac_out || fusion_[s][2].frac_in != fusion_[s][1].frac_out ||
        fusion_[s][2].frac_out != y_frac_[0])
      throw ArgumentError("model: context fusion fraction bits do not chain to y_frac");
    if (s == 0 && fusion_[0][0].frac_in != psi_frac(0))
      throw ArgumentError("model: stage 0 does not read psi at its own scale");
    if (s > 0) {
      const std::string x = "mean.ctx" + std::to_string(s) + ".";
      context_[s - 1].push_back(load_mean_layer(blob, x + "a", s * C, C));
      context_[s - 1].push_back(load_mean_layer(blob, x + "b", C, C));
      if (context_[s - 1][0].frac_in != y_frac_[0] || context_[s - 1][1].frac_in != context_[s - 1][0].frac_out)
        throw ArgumentError("model: context fraction bits do not chain");
    }
  }
}

Tensor16 MeanPath::hyper_decoder(int comp, const int16_t* z, int hz, int wz, int hl, int wl, unsigned threads) const {
  const int C = channels_[comp];
  const int h2 = (hl + 1) / 2, w2 = (wl + 1) / 2;
  const bool from_mu = hyper_output_ == HyperMeanOutput::kMeanOnLatentGrid;
  const int fh = from_mu ? hl : h2, fw = from_mu ? wl : w2;  // the chain's final grid
  const int ups = from_mu ? 2 : 1;
  if (hz < 1 || wz < 1 || hl < 1 || wl < 1 || fh > (hz << ups) || fw > (wz << ups))
    throw ArgumentError("hyper-mean decoder: latent size must be in [1, 4 x z size]");
  Tensor16 x = empty(hz, wz, C);
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < hz * wz; ++i) x.v[size_t(i) * C + c] = z[size_t(c) * hz * wz + i];
  int remaining = ups;
  for (const MeanLayer& L : hyper_[comp]) {
    if (L.kind == MeanLayerKind::kConvTranspose4x4s2) {
      --remaining;  // crop to the grid this output feeds: ceil(final / 2^remaining)
      x = run_mean_layer(L, x, -(-fh >> remaining), -(-fw >> remaining), threads);
    } else {
      x = run_mean_layer(L, x, x.h, x.w, threads);
    }
  }
  if (!from_mu) return x;
  // mu [hl][wl][C] -> psi [h2][w2][4C]: chunk s = mu at the phase of context stage s; the even padding is 0
  Tensor16 psi = empty(h2, w2, 4 * C);
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < h2; ++i)
      for (int j = 0; j < w2; ++j) {
        const int Y = 2 * i + kStageDy[s], X = 2 * j + kStageDx[s];
        if (Y >= hl || X >= wl) continue;
        std::copy_n(x.v.data() + (size_t(Y) * wl + X) * C, C, psi.v.data() + (size_t(i) * w2 + j) * psi.c + s * C);
      }
  return psi;
}

void MeanPath::reconstruct(int comp, const Tensor16& psi, const uint8_t* index, const int32_t* offsets, int hl,
                           int wl, const int16_t* residual, const float* y, const float* gain, int16_t* residual_out,
                           int16_t* y_hat_q, unsigned threads) const {
  const int C = channels_[comp], fy = y_frac_[comp];
  const int h2 = (hl + 1) / 2, w2 = (wl + 1) / 2;
  if (psi.h != h2 || psi.w != w2 || psi.c != 4 * C) throw ArgumentError("reconstruct: psi does not match the latent");
  if ((residual == nullptr) == (y == nullptr) || (y && (!gain || !residual_out)))
    throw ArgumentError("reconstruct: give either the residual (decoder) or y and gain (encoder)");
  std::vector<int64_t> gm(C);
  std::vector<int> gs(C);
  for (int c = 0; c < C; ++c) {
    const InverseGain ig = inverse_gain(offsets[c]);
    const int s = 30 - ig.exponent - fy;
    if (s < 1) throw BitstreamError(comp ? "gain_log_chroma" : "gain_log_luma", "gain outside the decodable range");
    gm[c] = ig.mantissa;
    gs[c] = std::min(s, 62);  // |r * m| < 2^47: any larger shift rounds to 0 all the same
  }
  const size_t plane = size_t(hl) * wl;
  const float mu_scale = std::ldexp(1.0f, -fy);
  // One latent position: r (given or made from y) and y_hat from mu (int16 at fy).
  auto code = [&](int c, size_t pos, int16_t mu) -> int16_t {
    const size_t at = size_t(c) * plane + pos;
    if (index[at] == kSkip) {
      if (residual_out) residual_out[at] = 0;
      return mu;
    }
    int32_t r;
    if (y) {
      const float d = (y[at] - float(mu) * mu_scale) * gain[c];
      r = int32_t(std::min(std::max(std::nearbyint(d), -32768.0f), 32767.0f));
      residual_out[at] = int16_t(r);
    } else {
      r = residual[at];
    }
    return sat16(int64_t(mu) + round_shift(int64_t(r) * gm[c], gs[c]));
  };

  if (comp == 1) {  // chroma: mu = psi chunk of the position's phase, no context
    const int fpsi = psi_frac(1);
    for (int Y = 0; Y < hl; ++Y)
      for (int X = 0; X < wl; ++X) {
        const int stage = kStageOfPhase[(Y & 1) * 2 + (X & 1)];
        const int16_t* p = psi.v.data() + (size_t(Y >> 1) * w2 + (X >> 1)) * psi.c + stage * C;
        for (int c = 0; c < C; ++c) y_hat_q[size_t(c) * plane + size_t(Y) * wl + X] = code(c, size_t(Y) * wl + X, requant(p[c], fpsi, fy));
      }
    return;
  }
  const int fpsi = psi_frac(0);
  Tensor16 decoded = empty(h2, w2, 3 * C);  // y_hat phases of stages 0..2, the context of the later ones
  for (int s = 0; s < 4; ++s) {
    Tensor16 in;
    if (s == 0) {
      in = empty(h2, w2, C);
      copy_channels(psi, 0, C, fpsi, fusion_[0][0].frac_in, in, 0);
    } else {
      Tensor16 prev = empty(h2, w2, s * C);
      copy_channels(decoded, 0, s * C, fy, fy, prev, 0);
      const Tensor16 ctx = run_chain(context_[s - 1], std::move(prev), threads);
      const int fcat = fusion_[s][0].frac_in;
      in = empty(h2, w2, 2 * C);
      copy_channels(ctx, 0, C, context_[s - 1][1].frac_out, fcat, in, 0);
      copy_channels(psi, s * C, C, fpsi, fcat, in, C);
    }
    const Tensor16 mu = run_chain(fusion_[s], std::move(in), threads);
    const int dy = kStageDy[s], dx = kStageDx[s];
    for (int i = 0; i < h2; ++i)
      for (int j = 0; j < w2; ++j) {
        const int Y = 2 * i + dy, X = 2 * j + dx;
        const bool inside = Y < hl && X < wl;  // padded positions are skipped: y_hat = mu
        const int16_t* m = mu.v.data() + (size_t(i) * w2 + j) * C;
        const int16_t* p = psi.v.data() + (size_t(i) * w2 + j) * psi.c + s * C;
        for (int c = 0; c < C; ++c) {
          // residual context model: the stage predicts a correction to psi_s (the hyper-mean of the phase)
          const int16_t mc = context_residual_ ? sat16(int32_t(m[c]) + requant(p[c], fpsi, fy)) : m[c];
          const int16_t v = inside ? code(c, size_t(Y) * wl + X, mc) : mc;
          if (inside) y_hat_q[size_t(c) * plane + size_t(Y) * wl + X] = v;
          if (s < 3) decoded.v[(size_t(i) * w2 + j) * decoded.c + s * C + c] = v;
        }
      }
  }
}

}  // namespace jpegai
