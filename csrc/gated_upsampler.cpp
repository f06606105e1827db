#include "gated_upsampler.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "float_tiles.hpp"
#include "thread_pool.hpp"

// The definition, per phase (a, b), 2x2 tile (ti, tj) of that phase and channel — the scalar path spells it
// out, the AVX2 path does the same per lane:
//   d[r][c] = xpad(2ti + a + r, 2tj + b + c), r, c in 0..2 (xpad: the input with one zero sample around it)
//   t = Bᵀd by rows:    t0 = d0 - d1, t1 = d1, t2 = d2 - d1
//   V = t B by columns: V[r][0] = t[r][0] - t[r][1], V[r][1] = t[r][1], V[r][2] = t[r][2] - t[r][1]
//   M[p][co] = 0, then for ci ascending M = fma(U[a][b][p][ci][co], V[p][ci], M)        (p = 3r + c)
//   s = Aᵀ M by rows:   s0 = M0 + M1, s1 = M1 + M2
//   Y = s A by columns: Y[u][0] = s[u][0] + s[u][1], Y[u][1] = s[u][1] + s[u][2]
//   u(2(2ti + u') + a, 2(2tj + v) + b) = Y[u'][v] + bias, then the gate of float_tiles.hpp.
// F(2, 2) in one dimension: y0 = d0 g0 + d1 g1 = (d0 - d1) g0 + d1 (g0 + g1), y1 = d1 g0 + d2 g1 = d1 (g0 + g1)
// + (d2 - d1) g1, so G = [[1, 0], [1, 1], [0, 1]].

namespace jpegai {
namespace {

using namespace float_tiles;
constexpr int kTileRowsPerTask = 1;  // rows of 2x2 tiles per pool task (each writes 4 output rows)
constexpr int kChunk = 24;           // tiles per GEMM batch (a multiple of 6): V and M stay in L2

// Kernel tap of output phase `phase` (0, 1) for padded offset `k` (0, 1) of the 2x2 phase convolution.
inline int tap(int phase, int k) { return 3 - phase - 2 * k; }

}  // namespace

GatedUpsampler::GatedUpsampler(const float* weight, const float* bias, const float* gate_weight,
                               const float* gate_bias, int cin, int cout, float alpha)
    : cin_(cin), cout_(cout), gated_(gate_weight != nullptr), alpha_(alpha) {
  if (cin < 1 || cout < 1 || cin > 4096 || cout > 4096)
    throw ArgumentError("GatedUpsampler: channels must be in [1, 4096]");
  if ((gate_weight == nullptr) != (gate_bias == nullptr))
    throw ArgumentError("GatedUpsampler: gate_weight and gate_bias go together");
  bias_.assign(bias, bias + cout);
  if (gated_) {
    gate_weight_.assign(gate_weight, gate_weight + size_t(cout) * cout);
    gate_bias_.assign(gate_bias, gate_bias + cout);
  }
  static const double G[3][2] = {{1, 0}, {1, 1}, {0, 1}};
  u_.resize(size_t(4) * 9 * cin * cout);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int ci = 0; ci < cin; ++ci)
        for (int co = 0; co < cout; ++co) {
          const float* wk = weight + (size_t(ci) * cout + co) * 16;
          double g[2][2];
          for (int r = 0; r < 2; ++r)
            for (int s = 0; s < 2; ++s) g[r][s] = wk[tap(a, r) * 4 + tap(b, s)];
          for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) {
              double v = 0;
              for (int r = 0; r < 2; ++r)
                for (int s = 0; s < 2; ++s) v += G[i][r] * g[r][s] * G[k][s];
              u_[((size_t(2 * a + b) * 9 + 3 * i + k) * cin + ci) * cout + co] = float(v);
            }
        }
  if (cout % kTileCo || cin % kLanes) return;  // the scalar definition only
  const int ncb = cout / kTileCo;
  u_packed_.resize(u_.size());
  float* p = u_packed_.data();
  for (int q = 0; q < 36; ++q)  // (phase, position)
    for (int cb = 0; cb < ncb; ++cb)
      for (int ci = 0; ci < cin; ++ci)
        for (int l = 0; l < kTileCo; ++l) *p++ = u_[(size_t(q) * cin + ci) * cout + cb * kTileCo + l];
  if (gated_) gate_packed_ = pack_gate(gate_weight_, cout);
}

bool GatedUpsampler::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !u_packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// xt: the padded input, pixel-major [(2th + 2) rows][(2tw + 2) cols][cin], xt(r, c) = xpad(r, c).
void GatedUpsampler::tile_rows_scalar(const float* xt, int h, int w, int t0, int t1, float* out, bool nhwc) const {
  const int C = cout_, tw = (w + 1) / 2, cols = 2 * tw + 2, W4 = 4 * tw;
  std::vector<float> V(size_t(9) * cin_), prow(size_t(4) * W4 * C);
  for (int ti = t0; ti < t1; ++ti) {
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const float* U = u_.data() + size_t(2 * a + b) * 9 * cin_ * C;
        for (int tj = 0; tj < tw; ++tj) {
          for (int ci = 0; ci < cin_; ++ci) {
            float d[3][3], t[3][3];
            for (int r = 0; r < 3; ++r)
              for (int c = 0; c < 3; ++c) d[r][c] = xt[(size_t(2 * ti + a + r) * cols + 2 * tj + b + c) * cin_ + ci];
            for (int c = 0; c < 3; ++c) {
              t[0][c] = d[0][c] - d[1][c];
              t[1][c] = d[1][c];
              t[2][c] = d[2][c] - d[1][c];
            }
            for (int r = 0; r < 3; ++r) {
              V[size_t(3 * r + 0) * cin_ + ci] = t[r][0] - t[r][1];
              V[size_t(3 * r + 1) * cin_ + ci] = t[r][1];
              V[size_t(3 * r + 2) * cin_ + ci] = t[r][2] - t[r][1];
            }
          }
          for (int co = 0; co < C; ++co) {
            float M[9];
            for (int p = 0; p < 9; ++p) {
              float acc = 0.0f;
              const float* up = U + size_t(p) * cin_ * C + co;
              for (int ci = 0; ci < cin_; ++ci) acc = std::fma(up[size_t(ci) * C], V[size_t(p) * cin_ + ci], acc);
              M[p] = acc;
            }
            for (int u = 0; u < 2; ++u) {
              float s[3];
              for (int c = 0; c < 3; ++c) s[c] = u == 0 ? M[c] + M[3 + c] : M[3 + c] + M[6 + c];
              float* o = prow.data() + (size_t(2 * u + a) * W4 + 4 * tj + b) * C + co;
              o[0] = (s[0] + s[1]) + bias_[co];
              o[2 * size_t(C)] = (s[1] + s[2]) + bias_[co];
            }
          }
        }
      }
    for (int k = 0; k < 4 && 4 * ti + k < 2 * h; ++k) {
      const float* p = prow.data() + size_t(k) * W4 * C;
      float* o = out + size_t(4 * ti + k) * 2 * w * (nhwc ? C : 1);
      const size_t plane = size_t(2 * h) * 2 * w;
      if (gated_) {
        gate_row_scalar(p, 2 * w, C, gate_weight_.data(), gate_bias_.data(), alpha_, o, plane, nhwc);
        continue;
      }
      for (int X = 0; X < 2 * w; ++X)
        for (int c = 0; c < C; ++c) o[nhwc ? size_t(X) * C + c : c * plane + X] = p[size_t(X) * C + c];
    }
  }
}

JPEGAI_TARGET_AVX2FMA void GatedUpsampler::tile_rows_avx2(const float* xt, int h, int w, int t0, int t1,
                                                          float* out, bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (w + 1) / 2, cols = 2 * tw + 2, W4 = 4 * tw, ncb = C / kTileCo;
  float* V = scratch(kScratchV, size_t(9) * kChunk * CI);
  float* M = scratch(kScratchM, size_t(9) * kChunk * C);
  float* prow = scratch(kScratchRow, size_t(4) * W4 * C);
  float* lrow = scratch(kScratchL, size_t(2) * w * C);
  float* orow = scratch(kScratchQ, size_t(2) * w * C);
  std::vector<ptrdiff_t> ch_off(std::max(C, CI));
  for (size_t k = 0; k < ch_off.size(); ++k) ch_off[k] = ptrdiff_t(k);
  alignas(32) float zeros[kTileCo] = {};
  for (int ti = t0; ti < t1; ++ti) {
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const float* U = u_packed_.data() + size_t(2 * a + b) * 9 * ncb * CI * kTileCo;
        for (int x0 = 0; x0 < tw; x0 += kChunk) {
          // the chunk: tiles [xa, xa + n); the last one overlaps the one before (the same values again)
          const int n = std::min(kChunk, tw), xa = std::min(x0, tw - n);
          // 1. input transform, 8 input channels per vector: V [pos][tile][ci]
          const size_t step = size_t(n) * CI;  // one position
          for (int k = 0; k < n; ++k)
            for (int c0 = 0; c0 < CI; c0 += kLanes) {
              __m256 d[3][3], t[3][3];
              for (int r = 0; r < 3; ++r)
                for (int c = 0; c < 3; ++c)
                  d[r][c] = _mm256_loadu_ps(xt + (size_t(2 * ti + a + r) * cols + 2 * (xa + k) + b + c) * CI + c0);
              for (int c = 0; c < 3; ++c) {
                t[0][c] = _mm256_sub_ps(d[0][c], d[1][c]);
                t[1][c] = d[1][c];
                t[2][c] = _mm256_sub_ps(d[2][c], d[1][c]);
              }
              for (int r = 0; r < 3; ++r) {
                float* v = V + (size_t(3 * r) * n + k) * CI + c0;
                _mm256_storeu_ps(v, _mm256_sub_ps(t[r][0], t[r][1]));
                _mm256_storeu_ps(v + step, t[r][1]);
                _mm256_storeu_ps(v + 2 * step, _mm256_sub_ps(t[r][2], t[r][1]));
              }
            }
          // 2. nine GEMMs, 16 output channels x 6 tiles at a time: M [pos][tile][co]
          for (int p = 0; p < 9; ++p)
            for (int cb = 0; cb < ncb; ++cb)
              for (int k0 = 0; k0 < n; k0 += kTilePx) {
                const int k = std::min(k0, n - kTilePx);
                tile_16x6(U + (size_t(p) * ncb + cb) * CI * kTileCo, V + (size_t(p) * n + k) * CI, ch_off.data(),
                          CI, size_t(CI), zeros, nullptr, 0, M + (size_t(p) * n + k) * C + cb * kTileCo,
                          size_t(C));
              }
          // 3. output transform + bias, 8 output channels per vector: prow [2u + a][4tj + 2v + b][co]
          const size_t pstep = size_t(n) * C;
          for (int k = 0; k < n; ++k)
            for (int c0 = 0; c0 < C; c0 += kLanes) {
              const float* m = M + size_t(k) * C + c0;
              const __m256 bias = _mm256_loadu_ps(&bias_[c0]);
              for (int u = 0; u < 2; ++u) {
                __m256 s[3];
                for (int c = 0; c < 3; ++c)
                  s[c] = _mm256_add_ps(_mm256_loadu_ps(m + (3 * u + c) * pstep), _mm256_loadu_ps(m + (3 * u + 3 + c) * pstep));
                float* o = prow + (size_t(2 * u + a) * W4 + 4 * (xa + k) + b) * C + c0;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(s[0], s[1]), bias));
                _mm256_storeu_ps(o + 2 * size_t(C), _mm256_add_ps(_mm256_add_ps(s[1], s[2]), bias));
              }
            }
        }
      }
    // 4. the gate (if any) on the four output rows, cropped to the picture
    for (int k = 0; k < 4 && 4 * ti + k < 2 * h; ++k) {
      float* o = out + size_t(4 * ti + k) * 2 * w * (nhwc ? C : 1);
      if (gated_)
        gate_row_avx2(prow + size_t(k) * W4 * C, 2 * w, C, gate_packed_.data(), gate_bias_.data(), alpha_,
                      lrow, orow, o, size_t(2 * h) * 2 * w, ch_off.data(), nhwc);
      else
        store_row_avx2(prow + size_t(k) * W4 * C, 2 * w, C, o, size_t(2 * h) * 2 * w, nhwc);
    }
  }
}

void GatedUpsampler::run(const float* x, int h, int w, float* out, unsigned threads, bool reference, bool nhwc_in,
                         bool nhwc_out) const {
  if (h < 1 || w < 1) throw ArgumentError("GatedUpsampler: empty input");
  run_tile_rows(x, cin_, h, w, nhwc_in, !reference && has_simd_kernel(), threads, kTileRowsPerTask,
                [&](const float* xt, int t0, int t1, bool simd) {
                  if (simd)
                    tile_rows_avx2(xt, h, w, t0, t1, out, nhwc_out);
                  else
                    tile_rows_scalar(xt, h, w, t0, t1, out, nhwc_out);
                });
}

}  // namespace jpegai
