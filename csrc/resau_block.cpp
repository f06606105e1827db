#include "resau_block.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "float_tiles.hpp"
#include "thread_pool.hpp"

// The definition, per pixel (y, x) and output channel co of group g = co / 16 — the scalar path spells it out,
// the AVX2 path does the same per lane:
//   r(y', x', ci) = ReLU6(x(y', x', ci)) (relu6 below), 0 outside the picture
//   s = 0, then for ky, kx in 0..2, j in 0..15 ascending: s = fma(Ws[co][j][ky][kx], r(y + ky - 1, x + kx - 1, 16g + j), s)
//   m = 1, then for ci ascending: m = fma(Wmix[co][ci], s[ci], m)
//   out = x(y, x, co) * m

namespace jpegai {
namespace {

using namespace float_tiles;

// ReLU6 as the selects _mm256_max_ps / _mm256_min_ps make (a NaN becomes 0), so both paths agree on every input
inline float relu6(float v) {
  const float m = v > 0.0f ? v : 0.0f;
  return m < 6.0f ? m : 6.0f;
}

JPEGAI_TARGET_AVX2FMA void relu6_avx2(const float* src, float* dst, size_t n) {
  const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dst + k, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(src + k), zero), six));
  for (; k < n; ++k) dst[k] = relu6(src[k]);
}

}  // namespace

ResAUBlock::ResAUBlock(const float* spatial_weight, const float* mix_weight, int c) : c_(c) {
  if (c < kGroup || c > 4096 || c % kGroup)
    throw ArgumentError("ResAUBlock: channels must be a multiple of 16 in [16, 4096]");
  spatial_.assign(spatial_weight, spatial_weight + size_t(c) * kGroup * 9);
  mix_.assign(mix_weight, mix_weight + size_t(c) * c);
  ones_.assign(c, 1.0f);
  // [group][step k = 16 (3 ky + kx) + j][16 lanes: co within the group]
  spatial_packed_.resize(spatial_.size());
  for (int g = 0; g < c / kGroup; ++g)
    for (int t = 0; t < 9; ++t)
      for (int j = 0; j < kGroup; ++j)
        for (int l = 0; l < kGroup; ++l)
          spatial_packed_[((size_t(g) * 9 + t) * kGroup + j) * kGroup + l] =
              spatial_[(size_t(g * kGroup + l) * kGroup + j) * 9 + t];
  mix_packed_ = pack_gate(mix_, c);
}

bool ResAUBlock::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// xt: the input, pixel-major and zero-padded [(h + 2) rows][(w + 2) cols][c]; output row y.
void ResAUBlock::row_scalar(const float* xt, int h, int w, int y, float* out, bool nhwc) const {
  const int C = c_;
  const size_t cols = size_t(w) + 2, plane = size_t(h) * w;
  std::vector<float> s(C), rt(3 * cols * C);
  for (size_t k = 0; k < rt.size(); ++k) rt[k] = relu6(xt[size_t(y) * cols * C + k]);
  for (int X = 0; X < w; ++X) {
    for (int co = 0; co < C; ++co) {
      const int g = co / kGroup;
      float acc = 0.0f;
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) {
          const float* r = rt.data() + (size_t(ky) * cols + X + kx) * C + g * kGroup;
          for (int j = 0; j < kGroup; ++j) acc = std::fma(spatial_[(size_t(co) * kGroup + j) * 9 + 3 * ky + kx], r[j], acc);
        }
      s[co] = acc;
    }
    const float* xp = xt + ((size_t(y) + 1) * cols + X + 1) * C;
    mix_pixel_scalar(s.data(), xp, C, mix_.data(), ones_.data(),
                     nhwc ? out + (size_t(y) * w + X) * C : out + size_t(y) * w + X, nhwc ? 1 : plane);
  }
}

JPEGAI_TARGET_AVX2FMA void ResAUBlock::row_avx2(const float* xt, int h, int w, int y, float* out, bool nhwc) const {
  const int C = c_;
  const size_t cols = size_t(w) + 2;
  float* s = scratch(kScratchRow, size_t(w) * C);
  float* q = scratch(kScratchQ, size_t(w) * C);
  // step k = 16 (3 ky + kx) + j of the grouped convolution reads r at this offset from the pixel's window corner
  ptrdiff_t conv_off[9 * kGroup];
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx)
      for (int j = 0; j < kGroup; ++j) conv_off[(3 * ky + kx) * kGroup + j] = (ptrdiff_t(ky) * ptrdiff_t(cols) + kx) * C + j;
  std::vector<ptrdiff_t> ch_off(C);
  for (int k = 0; k < C; ++k) ch_off[k] = k;
  alignas(32) static const float zeros[kTileCo] = {};
  // ReLU6 of the window's three input rows, in this worker's scratch (hot in L2; a whole-picture pass would go
  // through memory)
  float* rrow = scratch(kScratchAux, 3 * cols * C);
  relu6_avx2(xt + size_t(y) * cols * C, rrow, 3 * cols * C);
  for (int g = 0; g < C / kGroup; ++g)
    for (int X0 = 0; X0 < w; X0 += kTilePx) {
      const int X = std::min(X0, w - kTilePx);  // the last tile overlaps: the same values again
      tile_16x6(spatial_packed_.data() + size_t(g) * 9 * kGroup * kGroup, rrow + size_t(X) * C + g * kGroup, conv_off,
                9 * kGroup, size_t(C), zeros, nullptr, 0, s + size_t(X) * C + g * kGroup, size_t(C));
    }
  mix_row_avx2(s, xt + ((size_t(y) + 1) * cols + 1) * C, w, C, mix_packed_.data(), ones_.data(), q,
               out + size_t(y) * w * (nhwc ? C : 1), size_t(h) * w, ch_off.data(), nhwc);
}

void ResAUBlock::run(const float* x, int h, int w, float* out, unsigned threads, bool reference, bool nhwc_in,
                     bool nhwc_out) const {
  if (h < 1 || w < 1) throw ArgumentError("ResAUBlock: empty input");
  const bool simd = !reference && has_simd_kernel() && w >= kTilePx;
  run_pixel_rows(x, c_, h, w, nhwc_in, simd, threads, [&](const float* xt, int y) {
    if (simd)
      row_avx2(xt, h, w, y, out, nhwc_out);
    else
      row_scalar(xt, h, w, y, out, nhwc_out);
  });
}

}  // namespace jpegai
