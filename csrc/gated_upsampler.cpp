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
#include "winograd_tiles.hpp"

// The definition, per phase (a, b), 4x4 tile (ti, tj) of that phase and channel — the scalar path spells it
// out, the AVX2 path does the same per lane.  One-dimensional Bᵀ on five values e0..e4 (the same formula down
// the rows, then along them), F(4, 2) at the points 0, 1, -1, 2 and infinity:
//   b(e) = (2 (e0 - e2) + (e3 - e1),  (e3 - e2) - 2 e1,  (e3 + 2 e1) - 3 e2,  e3 - e1,  (e4 - e2) + 2 (e1 - e3))
//   and Aᵀ on five values m0..m4, with p = m1 + m2, q = m1 - m2:
//   a(m) = ((m0 + p) + m3,  q + 2 m3,  p + 4 m3,  (q + 8 m3) + m4)
//   d[r][c] = xpad(4ti + a + r, 4tj + b + c), r, c in 0..4 (xpad: the input with one zero sample around it)
//   t[.][c] = b(d[.][c]) for each column c;  V[r][.] = b(t[r][.]) for each row r
//   M[p][co] = 0, then for ci ascending M = fma(U[a][b][p][ci][co], V[p][ci], M)        (p = 5r + c)
//   s[.][c] = a(M[5 . + c]) for each column c;  Y[u][.] = a(s[u][.]) for each row u
//   u(2(4ti + u) + a, 2(4tj + v) + b) = Y[u][v] + bias, then the gate of float_tiles.hpp.
// Multiplications by 2, 4 and 8 are exact; every product and sum is its own IEEE operation (no fusion:
// -ffp-contract=off), so the scalar and AVX2 paths agree bit for bit.

namespace jpegai {
namespace {

using namespace float_tiles;
constexpr int kT = 4;          // output tile side per phase: F(4x4, 2x2)
constexpr int kN = kT + 1;     // input tile side
constexpr int kPos = kN * kN;  // 25 transformed positions
constexpr int kChunk = 12;     // tiles per GEMM batch (a multiple of 6): V and M stay in L2

// Kernel tap of output phase `phase` (0, 1) for padded offset `k` (0, 1) of the 2x2 phase convolution.
inline int tap(int phase, int k) { return 3 - phase - 2 * k; }

// F(4, 2) at the points 0, 1, -1, 2 and infinity (the formulas at the top), for winograd_tiles.hpp
struct F42 {
  static constexpr int kN = 5, kT = 4;
  static void bt_scalar(const float* e, size_t es, float* o, size_t os) {
    const float e0 = e[0], e1 = e[es], e2 = e[2 * es], e3 = e[3 * es], e4 = e[4 * es];
    o[0] = 2.0f * (e0 - e2) + (e3 - e1);
    o[os] = (e3 - e2) - 2.0f * e1;
    o[2 * os] = (e3 + 2.0f * e1) - 3.0f * e2;
    o[3 * os] = e3 - e1;
    o[4 * os] = (e4 - e2) + 2.0f * (e1 - e3);
  }

  static void at_scalar(const float* m, size_t ms, float* o, size_t os) {
    const float p = m[ms] + m[2 * ms], q = m[ms] - m[2 * ms], m3 = m[3 * ms];
    o[0] = (m[0] + p) + m3;
    o[os] = q + 2.0f * m3;
    o[2 * os] = p + 4.0f * m3;
    o[3 * os] = (q + 8.0f * m3) + m[4 * ms];
  }

  JPEGAI_TARGET_AVX2FMA static void bt_avx2(const __m256* e, __m256* o) {
    const __m256 two = _mm256_set1_ps(2.0f), three = _mm256_set1_ps(3.0f);
    o[0] = _mm256_add_ps(_mm256_mul_ps(two, _mm256_sub_ps(e[0], e[2])), _mm256_sub_ps(e[3], e[1]));
    o[1] = _mm256_sub_ps(_mm256_sub_ps(e[3], e[2]), _mm256_mul_ps(two, e[1]));
    o[2] = _mm256_sub_ps(_mm256_add_ps(e[3], _mm256_mul_ps(two, e[1])), _mm256_mul_ps(three, e[2]));
    o[3] = _mm256_sub_ps(e[3], e[1]);
    o[4] = _mm256_add_ps(_mm256_sub_ps(e[4], e[2]), _mm256_mul_ps(two, _mm256_sub_ps(e[1], e[3])));
  }

  JPEGAI_TARGET_AVX2FMA static void at_avx2(const __m256* m, __m256* o) {
    const __m256 p = _mm256_add_ps(m[1], m[2]), q = _mm256_sub_ps(m[1], m[2]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], p), m[3]);
    o[1] = _mm256_add_ps(q, _mm256_mul_ps(_mm256_set1_ps(2.0f), m[3]));
    o[2] = _mm256_add_ps(p, _mm256_mul_ps(_mm256_set1_ps(4.0f), m[3]));
    o[3] = _mm256_add_ps(_mm256_add_ps(q, _mm256_mul_ps(_mm256_set1_ps(8.0f), m[3])), m[4]);
  }
};
static_assert(F42::kN == kN && F42::kT == kT);

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
  // U = G g Gᵀ in float64, rounded once to float32 (part of the definition); G of F(4, 2) matching b() and a()
  static const double G[kN][2] = {{0.5, 0}, {-0.5, -0.5}, {-1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3}, {0, 1}};
  u_.resize(size_t(4) * kPos * cin * cout);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int ci = 0; ci < cin; ++ci)
        for (int co = 0; co < cout; ++co) {
          const float* wk = weight + (size_t(ci) * cout + co) * 16;
          double g[2][2];
          for (int r = 0; r < 2; ++r)
            for (int s = 0; s < 2; ++s) g[r][s] = wk[tap(a, r) * 4 + tap(b, s)];
          for (int i = 0; i < kN; ++i)
            for (int k = 0; k < kN; ++k) {
              double v = 0;
              for (int r = 0; r < 2; ++r)
                for (int s = 0; s < 2; ++s) v += G[i][r] * g[r][s] * G[k][s];
              u_[((size_t(2 * a + b) * kPos + kN * i + k) * cin + ci) * cout + co] = float(v);
            }
        }
  if (cout % kTileCo || cin % kLanes) return;  // the scalar definition only
  const int ncb = cout / kTileCo;
  u_packed_.resize(u_.size());
  float* p = u_packed_.data();
  for (int q = 0; q < 4 * kPos; ++q)  // (phase, position)
    for (int cb = 0; cb < ncb; ++cb)
      for (int ci = 0; ci < cin; ++ci)
        for (int l = 0; l < kTileCo; ++l) *p++ = u_[(size_t(q) * cin + ci) * cout + cb * kTileCo + l];
  if (gated_) gate_packed_ = pack_gate(gate_weight_, cout);
}

bool GatedUpsampler::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return !u_packed_.empty() && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// After the transforms: prow, 8 output rows of [W8][C] pixel-major (u = the transposed convolution + bias) -> the
// gate (if any), cropped to the picture, into output rows y0 .. y0 + 7.
void GatedUpsampler::finish_rows_scalar(const float* prow, int W8, int h, int w, int y0, float* out,
                                        bool nhwc) const {
  const int C = cout_;
  const size_t plane = size_t(2 * h) * 2 * w;
  for (int k = 0; k < 2 * kT && y0 + k < 2 * h; ++k) {
    const float* p = prow + size_t(k) * W8 * C;
    float* o = out + size_t(y0 + k) * 2 * w * (nhwc ? C : 1);
    if (gated_) {
      gate_row_scalar(p, 2 * w, C, gate_weight_.data(), gate_bias_.data(), alpha_, o, plane, nhwc);
      continue;
    }
    for (int X = 0; X < 2 * w; ++X)
      for (int c = 0; c < C; ++c) o[nhwc ? size_t(X) * C + c : c * plane + X] = p[size_t(X) * C + c];
  }
}

// xt: the padded input, pixel-major [(4th + 2) rows][cols][cin], xt(r, c) = xpad(r, c).
void GatedUpsampler::tile_rows_scalar(const float* xt, int cols, int h, int w, int t0, int t1, float* out,
                                      bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (cols - 2) / kT, W8 = 2 * kT * tw;
  std::vector<float> V(size_t(kPos) * CI), prow(size_t(2 * kT) * W8 * C);
  for (int ti = t0; ti < t1; ++ti) {
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        for (int tj = 0; tj < tw; ++tj)  // phase (a, b): output (2(4ti + u) + a, 2(4tj + v) + b)
          winograd::tile_scalar<F42>(xt + (size_t(kT * ti + a) * cols + kT * tj + b) * CI, size_t(cols) * CI, CI, C,
                                     u_.data() + size_t(2 * a + b) * kPos * CI * C, bias_.data(), V.data(),
                                     prow.data() + (size_t(a) * W8 + 2 * kT * tj + b) * C, size_t(2 * W8) * C,
                                     size_t(2 * C));
    finish_rows_scalar(prow.data(), W8, h, w, 2 * kT * ti, out, nhwc);
  }
}

JPEGAI_TARGET_AVX2FMA void GatedUpsampler::tile_rows_avx2(const float* xt, int cols, int h, int w, int t0, int t1,
                                                          float* out, bool nhwc) const {
  const int C = cout_, CI = cin_, tw = (cols - 2) / kT, W8 = 2 * kT * tw, ncb = C / kTileCo;
  float* V = scratch(kScratchV, size_t(kPos) * kChunk * CI);
  float* M = scratch(kScratchM, size_t(kPos) * kChunk * C);
  float* prow = scratch(kScratchRow, size_t(2 * kT) * W8 * C);
  float* lrow = scratch(kScratchL, size_t(W8) * C);
  float* orow = scratch(kScratchQ, size_t(W8) * C);
  float* narrow = scratch(kScratchAux, size_t(kTilePx) * C);
  std::vector<ptrdiff_t> ch_off(std::max(C, CI));
  for (size_t k = 0; k < ch_off.size(); ++k) ch_off[k] = ptrdiff_t(k);
  for (int ti = t0; ti < t1; ++ti) {
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const float* U = u_packed_.data() + size_t(2 * a + b) * kPos * ncb * CI * kTileCo;
        for (int x0 = 0; x0 < tw; x0 += kChunk) {
          // the chunk: tiles [xa, xa + n); the last one overlaps the one before (the same values again)
          const int n = std::min(kChunk, tw), xa = std::min(x0, tw - n);
          winograd::tiles_avx2<F42>(xt + (size_t(kT * ti + a) * cols + kT * xa + b) * CI, size_t(cols) * CI,
                                    size_t(kT) * CI, n, CI, C, U, bias_.data(), ch_off.data(), V, M,
                                    prow + (size_t(a) * W8 + 2 * kT * xa + b) * C, size_t(2 * W8) * C, size_t(2 * C),
                                    size_t(2 * kT) * C);
        }
      }
    // 4. the gate (if any) on the eight output rows, cropped to the picture
    const size_t plane = size_t(2 * h) * 2 * w;
    for (int k = 0; k < 2 * kT && 2 * kT * ti + k < 2 * h; ++k) {
      float* o = out + size_t(2 * kT * ti + k) * 2 * w * (nhwc ? C : 1);
      const float* p = prow + size_t(k) * W8 * C;
      if (!gated_) {
        store_row_avx2(p, 2 * w, C, o, plane, nhwc);
      } else if (2 * w < kTilePx) {  // the gate's tiles take 6 pixels: gate 6 (the padding's too), keep 2w
        gate_row_avx2(p, kTilePx, C, gate_packed_.data(), gate_bias_.data(), alpha_, lrow, orow, narrow, 0,
                      ch_off.data(), true);
        store_row_avx2(narrow, 2 * w, C, o, plane, nhwc);
      } else {
        gate_row_avx2(p, 2 * w, C, gate_packed_.data(), gate_bias_.data(), alpha_, lrow, orow, o, plane,
                      ch_off.data(), nhwc);
      }
    }
  }
}

void GatedUpsampler::run(const float* x, int h, int w, float* out, unsigned threads, bool reference, bool nhwc_in,
                         bool nhwc_out) const {
  if (h < 1 || w < 1) throw ArgumentError("GatedUpsampler: empty input");
  // one row of 4x4 tiles per pool task (8 output rows each)
  run_tile_rows(x, cin_, h, w, kT, nhwc_in, !reference && has_simd_kernel(), threads,
                [&](const float* xt, int cols, int t, bool simd) {
                  if (simd)
                    tile_rows_avx2(xt, cols, h, w, t, t + 1, out, nhwc_out);
                  else
                    tile_rows_scalar(xt, cols, h, w, t, t + 1, out, nhwc_out);
                });
}

}  // namespace jpegai
