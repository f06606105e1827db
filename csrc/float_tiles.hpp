// Float tiles shared by the synthesis blocks in C++ (gated_upsampler.cpp, gated_conv3x3.cpp): the 16 x 6 register
// tile of fused multiply-adds, the 8 x 8 transpose, and the VM synthesis' gate on one output row.
//
// Read me first:
//  * Every multiply-add is an explicit fused one, in a fixed order per output value; the scalar twins below do
//    the same IEEE operations in the same order, so SIMD and scalar results are bit-identical (the files that
//    include this are compiled with -ffp-contract=off so the compiler adds no fusions of its own).
//  * Vectors run over output channels (16 per tile), pixels are broadcast: no reduction ever crosses lanes.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "thread_pool.hpp"

namespace jpegai {
namespace float_tiles {

constexpr int kLanes = 8;    // floats per ymm
constexpr int kTileCo = 16;  // output channels per tile: two ymm
constexpr int kTilePx = 6;   // pixels per tile: 6 x 2 = 12 accumulators of the 16 ymm registers

#define JPEGAI_TARGET_AVX2FMA __attribute__((target("avx2,fma")))

inline float leaky(float v, float alpha) { return v >= 0.0f ? v : v * alpha; }

// The micro-kernel: 16 channels x 6 pixels, acc = init; for each step k: acc[v][q] += w[k][v] * x[off[k] + q * ps]
// (w: 16 floats per step, consecutive; x: one broadcast float per pixel), then the 12 vectors go to
// dst + q * ds (+ 8 for the second ymm).  Twelve named accumulators and one step per iteration keep the
// whole tile in registers (an array of them made the compiler spill).
JPEGAI_TARGET_AVX2FMA __attribute__((noinline)) inline void tile_16x6(const float* w, const float* x, const ptrdiff_t* off, int steps,
                                                              size_t ps, const float* init, const float* mul,
                                                              size_t ms, float* dst, size_t ds) {
  __m256 a0 = _mm256_loadu_ps(init), b0 = _mm256_loadu_ps(init + kLanes);
  __m256 a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
  __m256 b1 = b0, b2 = b0, b3 = b0, b4 = b0, b5 = b0;
  for (int k = 0; k < steps; ++k, w += kTileCo) {
    const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + kLanes);
    const float* xs = x + off[k];
    __m256 xb = _mm256_broadcast_ss(xs);
    a0 = _mm256_fmadd_ps(w0, xb, a0);
    b0 = _mm256_fmadd_ps(w1, xb, b0);
    xb = _mm256_broadcast_ss(xs + ps);
    a1 = _mm256_fmadd_ps(w0, xb, a1);
    b1 = _mm256_fmadd_ps(w1, xb, b1);
    xb = _mm256_broadcast_ss(xs + 2 * ps);
    a2 = _mm256_fmadd_ps(w0, xb, a2);
    b2 = _mm256_fmadd_ps(w1, xb, b2);
    xb = _mm256_broadcast_ss(xs + 3 * ps);
    a3 = _mm256_fmadd_ps(w0, xb, a3);
    b3 = _mm256_fmadd_ps(w1, xb, b3);
    xb = _mm256_broadcast_ss(xs + 4 * ps);
    a4 = _mm256_fmadd_ps(w0, xb, a4);
    b4 = _mm256_fmadd_ps(w1, xb, b4);
    xb = _mm256_broadcast_ss(xs + 5 * ps);
    a5 = _mm256_fmadd_ps(w0, xb, a5);
    b5 = _mm256_fmadd_ps(w1, xb, b5);
  }
  if (mul) {  // the gate's product with u (same layout as dst)
    a0 = _mm256_mul_ps(_mm256_loadu_ps(mul), a0), b0 = _mm256_mul_ps(_mm256_loadu_ps(mul + kLanes), b0);
    a1 = _mm256_mul_ps(_mm256_loadu_ps(mul + ms), a1), b1 = _mm256_mul_ps(_mm256_loadu_ps(mul + ms + kLanes), b1);
    a2 = _mm256_mul_ps(_mm256_loadu_ps(mul + 2 * ms), a2);
    b2 = _mm256_mul_ps(_mm256_loadu_ps(mul + 2 * ms + kLanes), b2);
    a3 = _mm256_mul_ps(_mm256_loadu_ps(mul + 3 * ms), a3);
    b3 = _mm256_mul_ps(_mm256_loadu_ps(mul + 3 * ms + kLanes), b3);
    a4 = _mm256_mul_ps(_mm256_loadu_ps(mul + 4 * ms), a4);
    b4 = _mm256_mul_ps(_mm256_loadu_ps(mul + 4 * ms + kLanes), b4);
    a5 = _mm256_mul_ps(_mm256_loadu_ps(mul + 5 * ms), a5);
    b5 = _mm256_mul_ps(_mm256_loadu_ps(mul + 5 * ms + kLanes), b5);
  }
  _mm256_storeu_ps(dst, a0), _mm256_storeu_ps(dst + kLanes, b0);
  _mm256_storeu_ps(dst + ds, a1), _mm256_storeu_ps(dst + ds + kLanes, b1);
  _mm256_storeu_ps(dst + 2 * ds, a2), _mm256_storeu_ps(dst + 2 * ds + kLanes, b2);
  _mm256_storeu_ps(dst + 3 * ds, a3), _mm256_storeu_ps(dst + 3 * ds + kLanes, b3);
  _mm256_storeu_ps(dst + 4 * ds, a4), _mm256_storeu_ps(dst + 4 * ds + kLanes, b4);
  _mm256_storeu_ps(dst + 5 * ds, a5), _mm256_storeu_ps(dst + 5 * ds + kLanes, b5);
}

// Transposes an 8 x 8 float block: src rows (stride ss) -> dst rows (stride ds).
JPEGAI_TARGET_AVX2FMA inline void transpose8(const float* src, size_t ss, float* dst, size_t ds) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(src + k * ss);
  t[0] = _mm256_unpacklo_ps(r[0], r[1]);
  t[1] = _mm256_unpackhi_ps(r[0], r[1]);
  t[2] = _mm256_unpacklo_ps(r[2], r[3]);
  t[3] = _mm256_unpackhi_ps(r[2], r[3]);
  t[4] = _mm256_unpacklo_ps(r[4], r[5]);
  t[5] = _mm256_unpackhi_ps(r[4], r[5]);
  t[6] = _mm256_unpacklo_ps(r[6], r[7]);
  t[7] = _mm256_unpackhi_ps(r[6], r[7]);
  r[0] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(1, 0, 1, 0));
  r[1] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(3, 2, 3, 2));
  r[2] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(1, 0, 1, 0));
  r[3] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(3, 2, 3, 2));
  r[4] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(1, 0, 1, 0));
  r[5] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(3, 2, 3, 2));
  r[6] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(1, 0, 1, 0));
  r[7] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(3, 2, 3, 2));
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(dst + k * ds, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * ds, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}


// A pixel-major row q [width][C] (C a multiple of 8) to out + X * C + c (nhwc) or out + c * plane + X (planar).
JPEGAI_TARGET_AVX2FMA inline void store_row_avx2(const float* q, int width, int C, float* out, size_t plane,
                                                 bool nhwc) {
  if (nhwc) {
    std::copy(q, q + size_t(width) * C, out);
    return;
  }
  int X = 0;
  for (; X + 8 <= width; X += 8)
    for (int c0 = 0; c0 < C; c0 += 8) transpose8(q + size_t(X) * C + c0, C, out + c0 * plane + X, plane);
  for (; X < width; ++X)
    for (int c = 0; c < C; ++c) out[c * plane + X] = q[size_t(X) * C + c];
}

// A 1x1 convolution's weight [cout][cin] packed for tile_16x6: [output block of 16][input channel][16]
// (cout a multiple of 16).
inline std::vector<float> pack_1x1(const float* weight, int cout, int cin) {
  std::vector<float> packed(size_t(cout) * cin);
  float* p = packed.data();
  for (int cb = 0; cb < cout / kTileCo; ++cb)
    for (int ci = 0; ci < cin; ++ci)
      for (int l = 0; l < kTileCo; ++l) *p++ = weight[size_t(cb * kTileCo + l) * cin + ci];
  return packed;
}

// Gate packing: the gate's C x C 1x1 convolution as pack_1x1 packs it.
inline std::vector<float> pack_gate(const std::vector<float>& gate_weight, int C) {
  return pack_1x1(gate_weight.data(), C, C);
}

// The 1x1 mix on one row of `width` (>= 6) pixels, pixel-major l and mul [X][C] (C a multiple of 16):
// o[c][X] = mul[X][c] * (init[c] + sum_ci w[c][ci] * l[X][ci]) (ci ascending, fused), to out + c * plane + X
// (planar) or out + X * C + c (nhwc).  packed: w as pack_gate packs it; q: width * C floats of scratch.
// The VM gate (below) and vr_bop's ResAU block (init 1) both end with it.
JPEGAI_TARGET_AVX2FMA inline void mix_row_avx2(const float* l, const float* mul, int width, int C, const float* packed,
                                               const float* init, float* q, float* out, size_t plane,
                                               const ptrdiff_t* channel_off, bool nhwc = false) {
  for (int cb = 0; cb < C / kTileCo; ++cb)
    for (int X0 = 0; X0 < width; X0 += kTilePx) {
      const int X = std::min(X0, width - kTilePx);  // the last tile overlaps: the same values again
      tile_16x6(packed + size_t(cb) * C * kTileCo, l + size_t(X) * C, channel_off, C, size_t(C), init + cb * kTileCo,
                mul + size_t(X) * C + cb * kTileCo, size_t(C), q + size_t(X) * C + cb * kTileCo, size_t(C));
    }
  store_row_avx2(q, width, C, out, plane, nhwc);
}

// The scalar twin of mix_row_avx2 for one pixel (any C; w unpacked [c][ci]): the same operations in the same order.
inline void mix_pixel_scalar(const float* l, const float* mul, int C, const float* w, const float* init, float* out,
                             size_t stride) {
  for (int c = 0; c < C; ++c) {
    float g = init[c];
    const float* wc = w + size_t(c) * C;
    for (int ci = 0; ci < C; ++ci) g = std::fma(wc[ci], l[ci], g);
    out[c * stride] = mul[c] * g;
  }
}

// The gate on one row of `width` (>= 6) pixels, pixel-major p [X][C] (C a multiple of 16):
// o[c][X] = p[X][c] * (gb[c] + sum_ci gw[c][ci] * leaky(p[X][ci])), to out + c * plane + X (planar), or to
// out + X * C + c (nhwc: the row of a pixel-major picture).  l, q: width * C floats.
JPEGAI_TARGET_AVX2FMA inline void gate_row_avx2(const float* p, int width, int C, const float* gate_packed,
                                                const float* gate_bias, float alpha, float* l, float* q, float* out,
                                                size_t plane, const ptrdiff_t* channel_off, bool nhwc = false) {
  const __m256 va = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
  for (size_t k = 0; k < size_t(width) * C; k += kLanes) {  // LeakyReLU as a select, as the definition
    const __m256 v = _mm256_loadu_ps(p + k);
    _mm256_storeu_ps(l + k, _mm256_blendv_ps(_mm256_mul_ps(v, va), v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ)));
  }
  mix_row_avx2(l, p, width, C, gate_packed, gate_bias, q, out, plane, channel_off, nhwc);
}

// The scalar twin of gate_row_avx2 (any width, any C): the same operations in the same order.
inline void gate_row_scalar(const float* p, int width, int C, const float* gate_weight, const float* gate_bias,
                            float alpha, float* out, size_t plane, bool nhwc = false) {
  std::vector<float> l(C);
  for (int X = 0; X < width; ++X) {
    const float* px = p + size_t(X) * C;
    for (int c = 0; c < C; ++c) l[c] = leaky(px[c], alpha);
    mix_pixel_scalar(l.data(), px, C, gate_weight, gate_bias, nhwc ? out + size_t(X) * C : out + X, nhwc ? 1 : plane);
  }
}

JPEGAI_TARGET_AVX2FMA inline void transpose8_avx2(const float* src, size_t ss, float* dst, size_t ds) {
  transpose8(src, ss, dst, ds);
}

// Per-thread scratch that outlives a call: a synthesis decode runs each block once per picture (or tile), and
// fresh multi-megabyte buffers every time cost thousands of page faults per decode (measured: ~4,000 for a
// Kodak BOP decode), more than the arithmetic they save on a slowed virtual machine.  Slot k of the calling
// thread, grown to at least n floats, never shrunk; contents are whatever the last user left.
enum ScratchSlot { kScratchInput = 0, kScratchV, kScratchM, kScratchRow, kScratchL, kScratchQ, kScratchAux,
                  kScratchSlots };
inline float* scratch(ScratchSlot slot, size_t n) {
  thread_local std::vector<float> buffers[kScratchSlots];
  std::vector<float>& b = buffers[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// The input of a block, pixel-major and zero-padded, in the calling thread's kScratchInput: [rows][cols][cin],
// xt(y + 1, x + 1) = x(y, x), zero elsewhere (rows >= h + 2, cols >= w + 2).  x planar [cin][h][w] (8 x 8
// transposes where simd and cin is a multiple of 8), or pixel-major [h][w][cin] (nhwc: row copies).
inline const float* pad_pixel_major(const float* x, int cin, int h, int w, int rows, int cols, bool nhwc,
                                    bool simd, unsigned threads) {
  const size_t row = size_t(cols) * cin;
  float* xt = scratch(kScratchInput, size_t(rows) * row);
  std::fill(xt, xt + row, 0.0f);                                       // the top padding row
  std::fill(xt + size_t(h + 1) * row, xt + size_t(rows) * row, 0.0f);  // the bottom ones
  global_pool().parallel_for(size_t(h), threads, [&](size_t yy) {
    const int y = int(yy);
    float* line = xt + size_t(y + 1) * row;
    std::fill(line, line + cin, 0.0f);                                // left padding
    std::fill(line + size_t(w + 1) * cin, line + row, 0.0f);          // right padding
    float* dst = line + cin;
    if (nhwc) {
      std::copy(x + size_t(y) * w * cin, x + size_t(y + 1) * w * cin, dst);
      return;
    }
    int X = 0;
    if (simd && cin % kLanes == 0)
      for (; X + 8 <= w; X += 8)
        for (int ci = 0; ci < cin; ci += 8)
          transpose8_avx2(x + (size_t(ci) * h + y) * w + X, size_t(h) * w, dst + size_t(X) * cin + ci, cin);
    for (int ci = 0; ci < cin; ++ci) {
      const float* src = x + (size_t(ci) * h + y) * w;
      for (int Xr = X; Xr < w; ++Xr) dst[size_t(Xr) * cin + ci] = src[Xr];
    }
  });
  return xt;
}

// A Winograd block's run() (gated_conv3x3.cpp, gated_upsampler.cpp): the input pixel-major and zero-padded — one
// sample above and to the left, below and to the right up to whole tiles of `tile` input samples plus one, and at
// least 6 tiles across where simd (the AVX2 GEMM takes 6 tiles at a time; a narrow picture's extra tiles lie over
// the padding and their outputs are dropped) — then rows(xt, cols, t, simd) for every row t of tiles on the pool
// (each writes its own output rows: any thread count gives the same bytes).
template <class Rows>
void run_tile_rows(const float* x, int cin, int h, int w, int tile, bool nhwc_in, bool simd, unsigned threads,
                   Rows&& rows) {
  const int th = (h + tile - 1) / tile, tw = std::max((w + tile - 1) / tile, simd ? kTilePx : 1);
  const int cols = tile * tw + 2;
  const float* xt = pad_pixel_major(x, cin, h, w, tile * th + 2, cols, nhwc_in, simd, threads);
  global_pool().parallel_for(size_t(th), threads, [&](size_t t) { rows(xt, cols, int(t), simd); });
}

// A row-at-a-time block's run() (resau_block.cpp, shuffle_upsampler.cpp): the input pixel-major and zero-padded by
// one sample all round, then row(xt, y) for every input row y on the pool (each writes its own output rows: any
// thread count gives the same bytes).
template <class Row>
void run_pixel_rows(const float* x, int cin, int h, int w, bool nhwc_in, bool simd, unsigned threads, Row&& row) {
  const float* xt = pad_pixel_major(x, cin, h, w, h + 2, w + 2, nhwc_in, simd, threads);
  global_pool().parallel_for(size_t(h), threads, [&](size_t y) { row(xt, int(y)); });
}

}  // namespace float_tiles
}  // namespace jpegai
