#include "output_head.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "float_tiles.hpp"
#include "thread_pool.hpp"

namespace jpegai {

using namespace float_tiles;

OutputHead::OutputHead(const float* weight, const float* bias, int cin, int cout, int block, float scale,
                       float offset)
    : cin_(cin), cout_(cout), block_(block), scale_(scale), offset_(offset) {
  if (cin < 1 || cout < 1 || cin > 4096 || cout > 4096) throw ArgumentError("OutputHead: channels must be in [1, 4096]");
  if (block < 1 || block > 16 || cout % (block * block))
    throw ArgumentError("OutputHead: the output channels must be a multiple of block², block in [1, 16]");
  weight_.assign(weight, weight + size_t(cout) * cin);
  bias_.assign(size_t(cout), 0.0f);
  if (bias) std::copy(bias, bias + cout, bias_.begin());
  if (cout % kTileCo || cin % kLanes) return;  // the scalar definition only
  packed_ = pack_1x1(weight_.data(), cout, cin);
  ch_off_.resize(size_t(cin));
  for (int k = 0; k < cin; ++k) ch_off_[k] = k;
}

bool OutputHead::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

void OutputHead::row_scalar(const float* xr, int w, float* v) const {
  for (int X = 0; X < w; ++X) {
    const float* px = xr + size_t(X) * cin_;
    for (int co = 0; co < cout_; ++co) {
      float acc = bias_[co];
      const float* wc = weight_.data() + size_t(co) * cin_;
      for (int ci = 0; ci < cin_; ++ci) acc = std::fma(wc[ci], px[ci], acc);
      v[size_t(X) * cout_ + co] = acc;
    }
  }
}

JPEGAI_TARGET_AVX2FMA void OutputHead::row_avx2(const float* xr, int w, float* v) const {
  for (int cb = 0; cb < cout_ / kTileCo; ++cb)
    for (int X0 = 0; X0 < w; X0 += kTilePx) {
      const int X = std::min(X0, w - kTilePx);  // the last tile overlaps: the same values again
      tile_16x6(packed_.data() + size_t(cb) * cin_ * kTileCo, xr + size_t(X) * cin_, ch_off_.data(), cin_,
                size_t(cin_), bias_.data() + cb * kTileCo, nullptr, 0, v + size_t(X) * cout_ + cb * kTileCo,
                size_t(cout_));
    }
}

void OutputHead::scatter(const float* v, int y, int w, int oh, int ow, float* out) const {
  const int r = block_, rr = r * r, channels = cout_ / rr;
  for (int c = 0; c < channels; ++c)
    for (int i = 0; i < r; ++i) {
      const int Y = r * y + i;
      if (Y >= oh) break;
      float* o = out + (size_t(c) * oh + Y) * ow;
      const float* vc = v + c * rr + i * r;
      for (int X = 0; X < w; ++X)
        for (int j = 0; j < r; ++j) {
          const int OX = r * X + j;
          if (OX < ow) o[OX] = vc[size_t(X) * cout_ + j] * scale_ + offset_;
        }
    }
}

void OutputHead::run(const float* x, int h, int w, int oh, int ow, float* out, unsigned threads, bool reference,
                     bool nhwc_in) const {
  if (h < 1 || w < 1) throw ArgumentError("OutputHead: empty input");
  if (oh < 0 || ow < 0 || oh > block_ * h || ow > block_ * w) throw ArgumentError("OutputHead: crop outside the output");
  const bool simd = !reference && has_simd_kernel() && w >= kTilePx;
  // pixel-major input rows: as given (nhwc) or transposed into this call's scratch, as the blocks do
  const float* xt = nhwc_in ? x : pad_pixel_major(x, cin_, h, w, h + 2, w + 2, false, simd, threads);
  const size_t row = nhwc_in ? size_t(w) * cin_ : size_t(w + 2) * cin_;
  const float* first = nhwc_in ? xt : xt + row + cin_;  // past the padding row and column
  const int rows_needed = std::min(h, (oh + block_ - 1) / block_);
  global_pool().parallel_for(size_t(rows_needed), threads, [&](size_t yy) {
    const int y = int(yy);
    float* v = scratch(kScratchQ, size_t(w) * cout_);
    if (simd)
      row_avx2(first + size_t(y) * row, w, v);
    else
      row_scalar(first + size_t(y) * row, w, v);
    scatter(v, y, w, oh, ow, out);
  });
}

}  // namespace jpegai
