#include "shuffle_upsampler.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "float_tiles.hpp"
#include "thread_pool.hpp"

// The definition, per input position (i, j) and convolution output channel oc = 4co + 2a + b — the scalar path
// spells it out, the AVX2 path does the same per lane:
//   acc = bias[oc], then for r, s in 0..1, ci ascending: acc = fma(W[oc][ci][r][s], x(i + r, j + s, ci), acc)
//   (x = 0 below the last row and right of the last column)
//   out(2i + a, 2j + b, co) = acc

namespace jpegai {
namespace {

using namespace float_tiles;

}  // namespace

ShuffleUpsampler::ShuffleUpsampler(const float* weight, const float* bias, int cin, int cout)
    : cin_(cin), cout_(cout) {
  if (cin < 1 || cout < 1 || cin > 4096 || cout > 4096)
    throw ArgumentError("ShuffleUpsampler: channels must be in [1, 4096]");
  const size_t oc = size_t(4) * cout;
  weight_.assign(weight, weight + oc * cin * 4);
  bias_.assign(bias, bias + oc);
  if (oc % kTileCo || cout % kLanes) return;  // the scalar definition only (store_row_avx2: 8 | Cout)
  packed_.resize(weight_.size());
  float* p = packed_.data();
  for (size_t ob = 0; ob < oc / kTileCo; ++ob)
    for (int r = 0; r < 2; ++r)
      for (int s = 0; s < 2; ++s)
        for (int ci = 0; ci < cin; ++ci)
          for (int l = 0; l < kTileCo; ++l) *p++ = weight_[((ob * kTileCo + l) * cin + ci) * 4 + 2 * r + s];
}

bool ShuffleUpsampler::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

void ShuffleUpsampler::row_scalar(const float* xt, int h, int w, int i, float* out, bool nhwc) const {
  const int C = cout_, CI = cin_;
  const size_t cols = size_t(w) + 2, plane = size_t(2 * h) * 2 * w;
  for (int j = 0; j < w; ++j)
    for (int oc = 0; oc < 4 * C; ++oc) {
      float acc = bias_[oc];
      for (int r = 0; r < 2; ++r)
        for (int s = 0; s < 2; ++s) {
          const float* xp = xt + ((size_t(i) + 1 + r) * cols + j + 1 + s) * CI;
          for (int ci = 0; ci < CI; ++ci) acc = std::fma(weight_[(size_t(oc) * CI + ci) * 4 + 2 * r + s], xp[ci], acc);
        }
      const int co = oc / 4, a = (oc / 2) % 2, b = oc % 2;
      const size_t Y = size_t(2 * i + a), X = size_t(2 * j + b);
      out[nhwc ? (Y * 2 * w + X) * C + co : co * plane + Y * 2 * w + X] = acc;
    }
}

JPEGAI_TARGET_AVX2FMA void ShuffleUpsampler::row_avx2(const float* xt, int h, int w, int i, float* out,
                                                      bool nhwc) const {
  const int C = cout_, CI = cin_, OC = 4 * C;
  const size_t cols = size_t(w) + 2;
  float* conv = scratch(kScratchRow, size_t(w) * OC);   // [j][oc]
  float* rows = scratch(kScratchQ, size_t(2) * 2 * w * C);  // output rows 2i, 2i + 1, pixel-major
  std::vector<ptrdiff_t> off(size_t(4) * CI);
  for (int r = 0; r < 2; ++r)
    for (int s = 0; s < 2; ++s)
      for (int ci = 0; ci < CI; ++ci) off[size_t(2 * r + s) * CI + ci] = (ptrdiff_t(r) * ptrdiff_t(cols) + s) * CI + ci;
  const float* x0 = xt + ((size_t(i) + 1) * cols + 1) * CI;  // x(i, 0)
  for (int ob = 0; ob < OC / kTileCo; ++ob)
    for (int X0 = 0; X0 < w; X0 += kTilePx) {
      const int X = std::min(X0, w - kTilePx);  // the last tile overlaps: the same values again
      tile_16x6(packed_.data() + size_t(ob) * 4 * CI * kTileCo, x0 + size_t(X) * CI, off.data(), 4 * CI, size_t(CI),
                bias_.data() + ob * kTileCo, nullptr, 0, conv + size_t(X) * OC + ob * kTileCo, size_t(OC));
    }
  // depth-to-space (CRD): channel 4co + 2a + b of input column j -> row a, column 2j + b, channel co
  for (int j = 0; j < w; ++j)
    for (int co = 0; co < C; ++co)
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          rows[(size_t(a) * 2 * w + 2 * j + b) * C + co] = conv[size_t(j) * OC + 4 * co + 2 * a + b];
  for (int a = 0; a < 2; ++a)
    store_row_avx2(rows + size_t(a) * 2 * w * C, 2 * w, C, out + size_t(2 * i + a) * 2 * w * (nhwc ? C : 1),
                   size_t(2 * h) * 2 * w, nhwc);
}

void ShuffleUpsampler::run(const float* x, int h, int w, float* out, unsigned threads, bool reference, bool nhwc_in,
                           bool nhwc_out) const {
  if (h < 1 || w < 1) throw ArgumentError("ShuffleUpsampler: empty input");
  const bool simd = !reference && has_simd_kernel() && w >= kTilePx;
  run_pixel_rows(x, cin_, h, w, nhwc_in, simd, threads, [&](const float* xt, int i) {
    if (simd)
      row_avx2(xt, h, w, i, out, nhwc_out);
    else
      row_scalar(xt, h, w, i, out, nhwc_out);
  });
}

}  // namespace jpegai
