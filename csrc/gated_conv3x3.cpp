#include "gated_conv3x3.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "float_tiles.hpp"
#include "thread_pool.hpp"

// The definition, per 2x2 output tile (ty, tx) and channel — the scalar path spells it out, the AVX2 path does
// the same per lane:
//   d[r][c] = x(2ty + r - 1, 2tx + c - 1), r, c in 0..3 (0 outside the picture)
//   t = Bᵀd by rows:    t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3
//   V = t B by columns: V[r][0] = t[r][0] - t[r][2], V[r][1] = t[r][1] + t[r][2], V[r][2] = t[r][2] - t[r][1],
//                       V[r][3] = t[r][1] - t[r][3]
//   M[p][co] = 0, then for ci ascending M = fma(U[p][ci][co], V[p][ci], M)           (p = 4r + c)
//   s = Aᵀ M by rows:   s0 = (M0 + M1) + M2, s1 = (M1 - M2) - M3
//   Y = s A by columns: Y[u][0] = (s[u][0] + s[u][1]) + s[u][2], Y[u][1] = (s[u][1] - s[u][2]) - s[u][3]
//   u = Y + bias, then the gate of float_tiles.hpp.

namespace jpegai {
namespace {

using namespace float_tiles;
constexpr int kTileRowsPerTask = 2;  // rows of 2x2 tiles per pool task

}  // namespace

GatedConv3x3::GatedConv3x3(const float* weight, const float* bias, const float* gate_weight, const float* gate_bias,
                           int cin, int cout, float alpha, bool plain)
    : cin_(cin), cout_(cout), residual_(gate_weight == nullptr && !plain), plain_(gate_weight == nullptr && plain),
      alpha_(alpha) {
  if (cin < 1 || cout < 1 || cin > 4096 || cout > 4096)
    throw ArgumentError("GatedConv3x3: channels must be in [1, 4096]");
  if (residual_ && cin != cout) throw ArgumentError("GatedConv3x3: a residual block needs Cin = Cout");
  if (plain && gate_weight != nullptr) throw ArgumentError("GatedConv3x3: a plain convolution has no gate");
  bias_.assign(bias, bias + cout);
  if (gated()) {
    gate_weight_.assign(gate_weight, gate_weight + size_t(cout) * cout);
    gate_bias_.assign(gate_bias, gate_bias + cout);
  }
  // U = G g Gᵀ, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]], in float64
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  u_.resize(size_t(16) * cin * cout);
  for (int co = 0; co < cout; ++co)
    for (int ci = 0; ci < cin; ++ci) {
      const float* g = weight + (size_t(co) * cin + ci) * 9;
      double gg[4][3];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < 4; ++i)
        for (int k = 0; k < 4; ++k)
          u_[(size_t(4 * i + k) * cin + ci) * cout + co] =
              float(gg[i][0] * G[k][0] + gg[i][1] * G[k][1] + gg[i][2] * G[k][2]);
    }
  if (cout % kTileCo || cin % kLanes) return;  // the scalar definition only
  const int ncb = cout / kTileCo;
  u_packed_.resize(u_.size());
  float* p = u_packed_.data();
  for (int pos = 0; pos < 16; ++pos)
    for (int cb = 0; cb < ncb; ++cb)
      for (int ci = 0; ci < cin; ++ci)
        for (int l = 0; l < kTileCo; ++l) *p++ = u_[(size_t(pos) * cin + ci) * cout + cb * kTileCo + l];
  if (gated()) gate_packed_ = pack_gate(gate_weight_, cout);
}

bool GatedConv3x3::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !u_packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// xt: the padded input, pixel-major [(2th + 2) rows][(2tw + 2) cols][cin]; xt(r, c) = x(r - 1, c - 1).
void GatedConv3x3::tile_rows_scalar(const float* xt, int h, int w, int ty0, int ty1, float* out, bool nhwc) const {
  const int C = cout_, tw = (w + 1) / 2, cols = 2 * tw + 2, W2 = 2 * tw;
  std::vector<float> V(size_t(16) * cin_), M(16), prow(size_t(2) * W2 * C);
  for (int ty = ty0; ty < ty1; ++ty) {
    for (int tx = 0; tx < tw; ++tx) {
      for (int ci = 0; ci < cin_; ++ci) {
        float d[4][4], t[4][4];
        for (int r = 0; r < 4; ++r)
          for (int c = 0; c < 4; ++c) d[r][c] = xt[(size_t(2 * ty + r) * cols + 2 * tx + c) * cin_ + ci];
        for (int c = 0; c < 4; ++c) {
          t[0][c] = d[0][c] - d[2][c];
          t[1][c] = d[1][c] + d[2][c];
          t[2][c] = d[2][c] - d[1][c];
          t[3][c] = d[1][c] - d[3][c];
        }
        for (int r = 0; r < 4; ++r) {
          V[size_t(4 * r + 0) * cin_ + ci] = t[r][0] - t[r][2];
          V[size_t(4 * r + 1) * cin_ + ci] = t[r][1] + t[r][2];
          V[size_t(4 * r + 2) * cin_ + ci] = t[r][2] - t[r][1];
          V[size_t(4 * r + 3) * cin_ + ci] = t[r][1] - t[r][3];
        }
      }
      for (int co = 0; co < C; ++co) {
        for (int p = 0; p < 16; ++p) {
          float acc = 0.0f;
          const float* up = &u_[size_t(p) * cin_ * C + co];
          for (int ci = 0; ci < cin_; ++ci) acc = std::fma(up[size_t(ci) * C], V[size_t(p) * cin_ + ci], acc);
          M[p] = acc;
        }
        float s[2][4];
        for (int c = 0; c < 4; ++c) {
          s[0][c] = (M[c] + M[4 + c]) + M[8 + c];
          s[1][c] = (M[4 + c] - M[8 + c]) - M[12 + c];
        }
        for (int u = 0; u < 2; ++u) {
          prow[(size_t(u) * W2 + 2 * tx) * C + co] = ((s[u][0] + s[u][1]) + s[u][2]) + bias_[co];
          prow[(size_t(u) * W2 + 2 * tx + 1) * C + co] = ((s[u][1] - s[u][2]) - s[u][3]) + bias_[co];
        }
      }
    }
    for (int u = 0; u < 2 && 2 * ty + u < h; ++u) {
      const int y = 2 * ty + u;
      float* o = out + size_t(y) * w * (nhwc ? C : 1);
      if (gated()) {
        gate_row_scalar(prow.data() + size_t(u) * W2 * C, w, C, gate_weight_.data(), gate_bias_.data(), alpha_, o,
                        size_t(h) * w, nhwc);
        continue;
      }
      for (int X = 0; X < w; ++X)
        for (int c = 0; c < C; ++c) {
          const float v = prow[(size_t(u) * W2 + X) * C + c];
          const float r = plain_ ? v : xt[(size_t(y + 1) * cols + X + 1) * C + c] + (v >= 0.0f ? v : 0.0f);
          o[nhwc ? size_t(X) * C + c : c * size_t(h) * w + X] = r;
        }
    }
  }
}

JPEGAI_TARGET_AVX2FMA void GatedConv3x3::tile_rows_avx2(const float* xt, int h, int w, int ty0, int ty1,
                                                        float* out, bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (w + 1) / 2, cols = 2 * tw + 2, W2 = 2 * tw, ncb = C / kTileCo;
  // V and M for a chunk of kChunk tiles (a multiple of 6) stay in L2 between the transforms and the GEMMs
  constexpr int kChunk = 24;
  float* V = scratch(kScratchV, size_t(16) * kChunk * CI);
  float* M = scratch(kScratchM, size_t(16) * kChunk * C);
  float* prow = scratch(kScratchRow, size_t(2) * W2 * C);
  float* lrow = scratch(kScratchL, size_t(W2) * C);
  float* orow = scratch(kScratchQ, size_t(W2) * C);
  std::vector<ptrdiff_t> ch_off(std::max(C, CI));
  for (size_t k = 0; k < ch_off.size(); ++k) ch_off[k] = ptrdiff_t(k);
  alignas(32) float zeros[kTileCo] = {};
  for (int ty = ty0; ty < ty1; ++ty) {
    for (int x0 = 0; x0 < tw; x0 += kChunk) {
      // the chunk: tiles [xa, xa + n); the last one overlaps the one before (the same values again)
      const int n = std::min(kChunk, tw), xa = std::min(x0, tw - n);
      // 1. input transform, 8 input channels per vector: V [pos][tile][ci]
      for (int k = 0; k < n; ++k)
        for (int c0 = 0; c0 < CI; c0 += kLanes) {
          const int tx = xa + k;
          __m256 d[4][4], t[4][4];
          for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c) d[r][c] = _mm256_loadu_ps(xt + (size_t(2 * ty + r) * cols + 2 * tx + c) * CI + c0);
          for (int c = 0; c < 4; ++c) {
            t[0][c] = _mm256_sub_ps(d[0][c], d[2][c]);
            t[1][c] = _mm256_add_ps(d[1][c], d[2][c]);
            t[2][c] = _mm256_sub_ps(d[2][c], d[1][c]);
            t[3][c] = _mm256_sub_ps(d[1][c], d[3][c]);
          }
          const size_t step = size_t(n) * CI;  // one position
          for (int r = 0; r < 4; ++r) {
            float* v = V + (size_t(4 * r) * n + k) * CI + c0;
            _mm256_storeu_ps(v, _mm256_sub_ps(t[r][0], t[r][2]));
            _mm256_storeu_ps(v + step, _mm256_add_ps(t[r][1], t[r][2]));
            _mm256_storeu_ps(v + 2 * step, _mm256_sub_ps(t[r][2], t[r][1]));
            _mm256_storeu_ps(v + 3 * step, _mm256_sub_ps(t[r][1], t[r][3]));
          }
        }
      // 2. sixteen GEMMs, 16 output channels x 6 tiles at a time: M [pos][tile][co]
      for (int p = 0; p < 16; ++p)
        for (int cb = 0; cb < ncb; ++cb)
          for (int k0 = 0; k0 < n; k0 += kTilePx) {
            const int k = std::min(k0, n - kTilePx);  // the last tile overlaps: the same values again
            tile_16x6(u_packed_.data() + (size_t(p) * ncb + cb) * CI * kTileCo, V + (size_t(p) * n + k) * CI,
                      ch_off.data(), CI, size_t(CI), zeros, nullptr, 0, M + (size_t(p) * n + k) * C + cb * kTileCo,
                      size_t(C));
          }
      // 3. output transform + bias, 8 output channels per vector: prow [u][2tx + v][co]
      const size_t pstep = size_t(n) * C;
      for (int k = 0; k < n; ++k)
        for (int c0 = 0; c0 < C; c0 += kLanes) {
          const float* m = M + size_t(k) * C + c0;
          const __m256 bias = _mm256_loadu_ps(&bias_[c0]);
          __m256 s[2][4];
          for (int c = 0; c < 4; ++c) {
            const __m256 m0 = _mm256_loadu_ps(m + c * pstep), m1 = _mm256_loadu_ps(m + (4 + c) * pstep);
            const __m256 m2 = _mm256_loadu_ps(m + (8 + c) * pstep), m3 = _mm256_loadu_ps(m + (12 + c) * pstep);
            s[0][c] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            s[1][c] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
          }
          for (int u = 0; u < 2; ++u) {
            float* o = prow + (size_t(u) * W2 + 2 * (xa + k)) * C + c0;
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[u][0], s[u][1]), s[u][2]), bias));
            _mm256_storeu_ps(o + C, _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[u][1], s[u][2]), s[u][3]), bias));
          }
        }
    }
    // 4. the gate (or the residual ReLU, or nothing), cropped to the picture's width and rows
    for (int u = 0; u < 2 && 2 * ty + u < h; ++u) {
      const int y = 2 * ty + u;
      float* o = out + size_t(y) * w * (nhwc ? C : 1);
      if (gated()) {
        gate_row_avx2(prow + size_t(u) * W2 * C, w, C, gate_packed_.data(), gate_bias_.data(), alpha_,
                      lrow, orow, o, size_t(h) * w, ch_off.data(), nhwc);
        continue;
      }
      if (plain_) {
        store_row_avx2(prow + size_t(u) * W2 * C, w, C, o, size_t(h) * w, nhwc);
        continue;
      }
      const __m256 zero = _mm256_setzero_ps();
      const float* xr = xt + (size_t(y + 1) * cols + 1) * C;
      const float* pr = prow + size_t(u) * W2 * C;
      for (size_t k = 0; k < size_t(w) * C; k += kLanes) {
        const __m256 v = _mm256_loadu_ps(pr + k);
        _mm256_storeu_ps(orow + k, _mm256_add_ps(_mm256_loadu_ps(xr + k),
                                                        _mm256_blendv_ps(zero, v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ))));
      }
      store_row_avx2(orow, w, C, o, size_t(h) * w, nhwc);
    }
  }
}

void GatedConv3x3::run(const float* x, int h, int w, float* out, unsigned threads, bool reference,
                       bool nhwc_in, bool nhwc_out) const {
  if (h < 1 || w < 1) throw ArgumentError("GatedConv3x3: empty input");
  run_tile_rows(x, cin_, h, w, nhwc_in, !reference && has_simd_kernel(), threads, kTileRowsPerTask,
                [&](const float* xt, int t0, int t1, bool simd) {
                  if (simd)
                    tile_rows_avx2(xt, h, w, t0, t1, out, nhwc_out);
                  else
                    tile_rows_scalar(xt, h, w, t0, t1, out, nhwc_out);
                });
}

}  // namespace jpegai
