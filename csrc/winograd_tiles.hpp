// Winograd F(kT x kT, r x r) on pixel-major tiles, shared by the 3x3 blocks (gated_conv3x3.cpp, F(4x4, 3x3)) and the
// up-samplers' phases (gated_upsampler.cpp, F(4x4, 2x2)): the 2-D input transform, the GEMMs over the transformed
// positions, the output transform with the bias.  A transform F supplies kN (input tile side), kT (output tile side)
// and its one-dimensional Bᵀ and Aᵀ twice, on floats (bt_scalar, at_scalar: strided, e.g. down a column) and on
// eight channels at a time (bt_avx2, at_avx2).
//
// Read me first:
//  * The scalar and AVX2 forms of Bᵀ / Aᵀ must do the same IEEE operations in the same order (the including files
//    are built with -ffp-contract=off): that, and the GEMM's fused multiply-adds in ascending input channel from 0,
//    make the AVX2 path equal its scalar definition bit for bit.
//  * 2-D order, both paths: Bᵀ down each column, then along each row; Aᵀ down each column, then along each row.
//  * Transformed weights U: scalar [position][cin][cout]; AVX2 packed [position][cout / 16][cin][16].
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "float_tiles.hpp"

namespace jpegai {
namespace winograd {

using float_tiles::kLanes;
using float_tiles::kTileCo;
using float_tiles::kTilePx;

// One tile, every output channel, the scalar definition.  d: the tile's top-left input sample (channel 0) of a
// pixel-major picture whose rows are `row` floats apart; U [kN²][CI][C]; out: the tile's top-left output sample
// (channel 0), output rows `out_row` and columns `out_col` floats apart.  V: kN² CI floats of scratch.
template <class F>
void tile_scalar(const float* d, size_t row, int CI, int C, const float* U, const float* bias, float* V, float* out,
                 size_t out_row, size_t out_col) {
  constexpr int kN = F::kN, kT = F::kT, kPos = kN * kN;
  float t[kPos], M[kPos], s[kT * kN], y[kT];
  for (int ci = 0; ci < CI; ++ci) {
    for (int c = 0; c < kN; ++c) F::bt_scalar(d + size_t(c) * CI + ci, row, &t[c], kN);  // down column c
    for (int r = 0; r < kN; ++r) F::bt_scalar(&t[kN * r], 1, &V[size_t(kN * r) * CI + ci], CI);  // along row r
  }
  for (int co = 0; co < C; ++co) {
    for (int p = 0; p < kPos; ++p) {
      float acc = 0.0f;
      const float* up = U + size_t(p) * CI * C + co;
      for (int ci = 0; ci < CI; ++ci) acc = std::fma(up[size_t(ci) * C], V[size_t(p) * CI + ci], acc);
      M[p] = acc;
    }
    for (int c = 0; c < kN; ++c) F::at_scalar(&M[c], kN, &s[c], kN);  // s[u][c] at s[kN u + c]
    for (int u = 0; u < kT; ++u) {
      F::at_scalar(&s[kN * u], 1, y, 1);
      for (int v = 0; v < kT; ++v) out[u * out_row + v * out_col + co] = y[v] + bias[co];
    }
  }
}

// n (>= 6) consecutive tiles, the AVX2 path: d0 the first tile's top-left input sample, the next tiles `tile_step`
// floats further; out0 the first tile's top-left output sample, the next tiles `out_tile` floats further.
// V: kN² n CI floats, M: kN² n C floats of scratch (kept small enough for L2 by the caller's n); ch_off: 0 .. CI-1.
template <class F>
JPEGAI_TARGET_AVX2FMA void tiles_avx2(const float* d0, size_t row, size_t tile_step, int n, int CI, int C,
                                      const float* U_packed, const float* bias, const ptrdiff_t* ch_off, float* V,
                                      float* M, float* out0, size_t out_row, size_t out_col, size_t out_tile) {
  constexpr int kN = F::kN, kT = F::kT, kPos = kN * kN;
  const int ncb = C / kTileCo;
  alignas(32) static const float zeros[kTileCo] = {};
  const size_t vstep = size_t(n) * CI;  // one position of V
  // 1. input transform, 8 input channels per vector: V [pos][tile][ci]
  for (int k = 0; k < n; ++k)
    for (int c0 = 0; c0 < CI; c0 += kLanes) {
      const float* d = d0 + size_t(k) * tile_step + c0;
      __m256 e[kN], t[kN][kN], o[kN];
      for (int c = 0; c < kN; ++c) {  // down column c: t[.][c]
        for (int r = 0; r < kN; ++r) e[r] = _mm256_loadu_ps(d + size_t(r) * row + size_t(c) * CI);
        F::bt_avx2(e, o);
        for (int r = 0; r < kN; ++r) t[r][c] = o[r];
      }
      for (int r = 0; r < kN; ++r) {  // along row r
        F::bt_avx2(t[r], o);
        float* v = V + size_t(kN * r) * vstep + size_t(k) * CI + c0;
        for (int c = 0; c < kN; ++c) _mm256_storeu_ps(v + c * vstep, o[c]);
      }
    }
  // 2. one GEMM per position, 16 output channels x 6 tiles at a time: M [pos][tile][co]
  for (int p = 0; p < kPos; ++p)
    for (int cb = 0; cb < ncb; ++cb)
      for (int k0 = 0; k0 < n; k0 += kTilePx) {
        const int k = std::min(k0, n - kTilePx);  // the last tile overlaps: the same values again
        float_tiles::tile_16x6(U_packed + (size_t(p) * ncb + cb) * CI * kTileCo, V + (size_t(p) * n + k) * CI,
                               ch_off, CI, size_t(CI), zeros, nullptr, 0, M + (size_t(p) * n + k) * C + cb * kTileCo,
                               size_t(C));
      }
  // 3. output transform + bias, 8 output channels per vector
  const size_t mstep = size_t(n) * C;  // one position of M
  for (int k = 0; k < n; ++k)
    for (int c0 = 0; c0 < C; c0 += kLanes) {
      const float* m = M + size_t(k) * C + c0;
      const __m256 b = _mm256_loadu_ps(bias + c0);
      __m256 e[kN], s[kT][kN], y[kT];
      for (int c = 0; c < kN; ++c) {  // down column c
        for (int r = 0; r < kN; ++r) e[r] = _mm256_loadu_ps(m + size_t(kN * r + c) * mstep);
        F::at_avx2(e, y);
        for (int u = 0; u < kT; ++u) s[u][c] = y[u];
      }
      for (int u = 0; u < kT; ++u) {  // along row u
        F::at_avx2(s[u], y);
        float* o = out0 + size_t(k) * out_tile + u * out_row + c0;
        for (int v = 0; v < kT; ++v) _mm256_storeu_ps(o + v * out_col, _mm256_add_ps(y[v], b));
      }
    }
}

}  // namespace winograd
}  // namespace jpegai
