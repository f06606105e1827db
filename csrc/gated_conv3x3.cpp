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
#include "winograd_tiles.hpp"

// The definition, per 4x4 output tile (ty, tx) and channel — the scalar path spells it out, the AVX2 path does
// the same per lane.  One-dimensional Bᵀ on six values e0..e5 (the same formula down the rows, then along them):
//   b(e) = ((4 e0 + e4) - 5 e2,  (e3 + e4) - 4 (e1 + e2),  (e4 - e3) + 4 (e1 - e2),
//           (e4 - e2) + 2 (e3 - e1),  (e4 - e2) - 2 (e3 - e1),  (4 e1 + e5) - 5 e3)
//   and Aᵀ on six values m0..m5, with p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4:
//   a(m) = ((m0 + p) + r,  q + 2 s,  p + 4 r,  (q + 8 s) + m5)
//   d[r][c] = x(4ty + r - 1, 4tx + c - 1), r, c in 0..5 (0 outside the picture)
//   t[.][c] = b(d[.][c]) for each column c;  V[r][.] = b(t[r][.]) for each row r
//   M[p][co] = 0, then for ci ascending M = fma(U[p][ci][co], V[p][ci], M)           (p = 6r + c)
//   s[.][c] = a(M[6 . + c]) for each column c;  Y[u][.] = a(s[u][.]) for each row u
//   u = Y + bias, then the gate of float_tiles.hpp.
// Multiplications by 2, 4 and 8 are exact; every product and sum is its own IEEE operation (no fusion:
// -ffp-contract=off), so the scalar and AVX2 paths agree bit for bit.

namespace jpegai {
namespace {

using namespace float_tiles;
constexpr int kT = 4;               // output tile side: F(4x4, 3x3)
constexpr int kN = kT + 2;          // input tile side
constexpr int kPos = kN * kN;       // 36 transformed positions
constexpr int kChunk = 12;          // tiles per GEMM batch (a multiple of 6): V and M (36 positions each) stay in L2

// F(4, 3) at the points 0, 1, -1, 2, -2 and infinity (the formulas at the top), for winograd_tiles.hpp
struct F43 {
  static constexpr int kN = 6, kT = 4;
  static void bt_scalar(const float* e, size_t es, float* o, size_t os) {
    const float e0 = e[0], e1 = e[es], e2 = e[2 * es], e3 = e[3 * es], e4 = e[4 * es], e5 = e[5 * es];
    o[0] = (4.0f * e0 + e4) - 5.0f * e2;
    o[os] = (e3 + e4) - 4.0f * (e1 + e2);
    o[2 * os] = (e4 - e3) + 4.0f * (e1 - e2);
    o[3 * os] = (e4 - e2) + 2.0f * (e3 - e1);
    o[4 * os] = (e4 - e2) - 2.0f * (e3 - e1);
    o[5 * os] = (4.0f * e1 + e5) - 5.0f * e3;
  }

  static void at_scalar(const float* m, size_t ms, float* o, size_t os) {
    const float p = m[ms] + m[2 * ms], q = m[ms] - m[2 * ms], r = m[3 * ms] + m[4 * ms], s = m[3 * ms] - m[4 * ms];
    o[0] = (m[0] + p) + r;
    o[os] = q + 2.0f * s;
    o[2 * os] = p + 4.0f * r;
    o[3 * os] = (q + 8.0f * s) + m[5 * ms];
  }

  JPEGAI_TARGET_AVX2FMA static void bt_avx2(const __m256* e, __m256* o) {
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f);
    o[0] = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(four, e[0]), e[4]), _mm256_mul_ps(five, e[2]));
    o[1] = _mm256_sub_ps(_mm256_add_ps(e[3], e[4]), _mm256_mul_ps(four, _mm256_add_ps(e[1], e[2])));
    o[2] = _mm256_add_ps(_mm256_sub_ps(e[4], e[3]), _mm256_mul_ps(four, _mm256_sub_ps(e[1], e[2])));
    const __m256 a = _mm256_sub_ps(e[4], e[2]), b = _mm256_mul_ps(two, _mm256_sub_ps(e[3], e[1]));
    o[3] = _mm256_add_ps(a, b);
    o[4] = _mm256_sub_ps(a, b);
    o[5] = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(four, e[1]), e[5]), _mm256_mul_ps(five, e[3]));
  }

  JPEGAI_TARGET_AVX2FMA static void at_avx2(const __m256* m, __m256* o) {
    const __m256 p = _mm256_add_ps(m[1], m[2]), q = _mm256_sub_ps(m[1], m[2]);
    const __m256 r = _mm256_add_ps(m[3], m[4]), s = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], p), r);
    o[1] = _mm256_add_ps(q, _mm256_mul_ps(_mm256_set1_ps(2.0f), s));
    o[2] = _mm256_add_ps(p, _mm256_mul_ps(_mm256_set1_ps(4.0f), r));
    o[3] = _mm256_add_ps(_mm256_add_ps(q, _mm256_mul_ps(_mm256_set1_ps(8.0f), s)), m[5]);
  }
};
static_assert(F43::kN == kN && F43::kT == kT);

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
  // U = G g Gᵀ in float64, rounded once to float32 (part of the definition); G of F(4, 3) at the points
  // 0, 1, -1, 2, -2 and infinity, matching b() and a() above
  static const double G[kN][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  u_.resize(size_t(kPos) * cin * cout);
  for (int co = 0; co < cout; ++co)
    for (int ci = 0; ci < cin; ++ci) {
      const float* g = weight + (size_t(co) * cin + ci) * 9;
      double gg[kN][3];
      for (int i = 0; i < kN; ++i)
        for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < kN; ++i)
        for (int k = 0; k < kN; ++k)
          u_[(size_t(kN * i + k) * cin + ci) * cout + co] =
              float(gg[i][0] * G[k][0] + gg[i][1] * G[k][1] + gg[i][2] * G[k][2]);
    }
  if (cout % kTileCo || cin % kLanes) return;  // the scalar definition only
  const int ncb = cout / kTileCo;
  u_packed_.resize(u_.size());
  float* p = u_packed_.data();
  for (int pos = 0; pos < kPos; ++pos)
    for (int cb = 0; cb < ncb; ++cb)
      for (int ci = 0; ci < cin; ++ci)
        for (int l = 0; l < kTileCo; ++l) *p++ = u_[(size_t(pos) * cin + ci) * cout + cb * kTileCo + l];
  if (gated()) gate_packed_ = pack_gate(gate_weight_, cout);
}

bool GatedConv3x3::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !u_packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// After the convolution (prow: `rows` rows of [W][C] pixel-major, u = conv + bias): the gate, the residual ReLU or
// nothing, cropped to the picture, into the output rows y0 .. y0 + rows - 1.
void GatedConv3x3::finish_rows_scalar(const float* xt, int cols, const float* prow, int W, int h, int w, int y0,
                                      float* out, bool nhwc) const {
  const int C = cout_;
  for (int u = 0; u < kT && y0 + u < h; ++u) {
    const int y = y0 + u;
    float* o = out + size_t(y) * w * (nhwc ? C : 1);
    if (gated()) {
      gate_row_scalar(prow + size_t(u) * W * C, w, C, gate_weight_.data(), gate_bias_.data(), alpha_, o,
                      size_t(h) * w, nhwc);
      continue;
    }
    for (int X = 0; X < w; ++X)
      for (int c = 0; c < C; ++c) {
        const float v = prow[(size_t(u) * W + X) * C + c];
        const float r = plain_ ? v : xt[(size_t(y + 1) * cols + X + 1) * C + c] + (v >= 0.0f ? v : 0.0f);
        o[nhwc ? size_t(X) * C + c : c * size_t(h) * w + X] = r;
      }
  }
}

// xt: the padded input, pixel-major [(4th + 2) rows][cols][cin]; xt(r, c) = x(r - 1, c - 1).
void GatedConv3x3::tile_rows_scalar(const float* xt, int cols, int h, int w, int ty0, int ty1, float* out,
                                    bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (cols - 2) / kT, W4 = kT * tw;
  std::vector<float> V(size_t(kPos) * CI), prow(size_t(kT) * W4 * C);
  for (int ty = ty0; ty < ty1; ++ty) {
    for (int tx = 0; tx < tw; ++tx)
      winograd::tile_scalar<F43>(xt + (size_t(kT * ty) * cols + kT * tx) * CI, size_t(cols) * CI, CI, C, u_.data(),
                                 bias_.data(), V.data(), prow.data() + size_t(kT * tx) * C, size_t(W4) * C, size_t(C));
    finish_rows_scalar(xt, cols, prow.data(), W4, h, w, kT * ty, out, nhwc);
  }
}

JPEGAI_TARGET_AVX2FMA void GatedConv3x3::tile_rows_avx2(const float* xt, int cols, int h, int w, int ty0, int ty1,
                                                        float* out, bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (cols - 2) / kT, W4 = kT * tw;
  float* V = scratch(kScratchV, size_t(kPos) * kChunk * CI);
  float* M = scratch(kScratchM, size_t(kPos) * kChunk * C);
  float* prow = scratch(kScratchRow, size_t(kT) * W4 * C);
  float* lrow = scratch(kScratchL, size_t(W4) * C);
  float* orow = scratch(kScratchQ, size_t(W4) * C);
  float* narrow = scratch(kScratchAux, size_t(kTilePx) * C);
  std::vector<ptrdiff_t> ch_off(std::max(C, CI));
  for (size_t k = 0; k < ch_off.size(); ++k) ch_off[k] = ptrdiff_t(k);
  for (int ty = ty0; ty < ty1; ++ty) {
    for (int x0 = 0; x0 < tw; x0 += kChunk) {
      // the chunk: tiles [xa, xa + n); the last one overlaps the one before (the same values again)
      const int n = std::min(kChunk, tw), xa = std::min(x0, tw - n);
      winograd::tiles_avx2<F43>(xt + (size_t(kT * ty) * cols + kT * xa) * CI, size_t(cols) * CI, size_t(kT) * CI, n,
                                CI, C, u_packed_.data(), bias_.data(), ch_off.data(), V, M,
                                prow + size_t(kT * xa) * C, size_t(W4) * C, size_t(C), size_t(kT) * C);
    }
    // 4. the gate (or the residual ReLU, or nothing), cropped to the picture's width and rows
    for (int u = 0; u < kT && kT * ty + u < h; ++u) {
      const int y = kT * ty + u;
      float* o = out + size_t(y) * w * (nhwc ? C : 1);
      if (gated() && w < kTilePx) {  // the gate's tiles take 6 pixels: gate 6 (the padding's too), keep w
        gate_row_avx2(prow + size_t(u) * W4 * C, kTilePx, C, gate_packed_.data(), gate_bias_.data(), alpha_, lrow,
                      orow, narrow, 0, ch_off.data(), true);
        store_row_avx2(narrow, w, C, o, size_t(h) * w, nhwc);
        continue;
      }
      if (gated()) {
        gate_row_avx2(prow + size_t(u) * W4 * C, w, C, gate_packed_.data(), gate_bias_.data(), alpha_, lrow, orow,
                      o, size_t(h) * w, ch_off.data(), nhwc);
        continue;
      }
      if (plain_) {
        store_row_avx2(prow + size_t(u) * W4 * C, w, C, o, size_t(h) * w, nhwc);
        continue;
      }
      const __m256 zero = _mm256_setzero_ps();
      const float* xr = xt + (size_t(y + 1) * cols + 1) * C;
      const float* pr = prow + size_t(u) * W4 * C;
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
  // one row of 4x4 tiles per pool task (4 output rows each)
  run_tile_rows(x, cin_, h, w, kT, nhwc_in, !reference && has_simd_kernel(), threads,
                [&](const float* xt, int cols, int t, bool simd) {
                  if (simd)
                    tile_rows_avx2(xt, cols, h, w, t, t + 1, out, nhwc_out);
                  else
                    tile_rows_scalar(xt, cols, h, w, t, t + 1, out, nhwc_out);
                });
}

}  // namespace jpegai
