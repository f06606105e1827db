#include "gated_upsampler.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

constexpr int kLanes = 8;         // floats per ymm
constexpr int kTileCo = 16;       // output channels per tile: two ymm
constexpr int kTilePx = 6;        // pixels per tile: 6 x 2 = 12 accumulators of the 16 ymm registers
constexpr int kRowsPerTask = 2;   // input rows per pool task (each makes 2 output rows per row)

// Kernel tap of output phase `phase` (0, 1) for padded offset `k` (0, 1) of the 2x2 phase convolution.
inline int tap(int phase, int k) { return 3 - phase - 2 * k; }

inline float leaky(float v, float alpha) { return v >= 0.0f ? v : v * alpha; }

}  // namespace

GatedUpsampler::GatedUpsampler(const float* weight, const float* bias, const float* gate_weight,
                               const float* gate_bias, int cin, int cout, float alpha)
    : cin_(cin), cout_(cout), alpha_(alpha) {
  if (cin < 1 || cout < 1 || cin > 4096 || cout > 4096)
    throw ArgumentError("GatedUpsampler: channels must be in [1, 4096]");
  const size_t nw = size_t(cin) * cout * 16;
  weight_.assign(weight, weight + nw);
  bias_.assign(bias, bias + cout);
  gate_weight_.assign(gate_weight, gate_weight + size_t(cout) * cout);
  gate_bias_.assign(gate_bias, gate_bias + cout);
  if (cout % kTileCo) return;  // the scalar reference only
  const int ncb = cout / kTileCo;
  conv_packed_.resize(size_t(4) * ncb * cin * 4 * kTileCo);
  float* p = conv_packed_.data();
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int cb = 0; cb < ncb; ++cb)
        for (int ci = 0; ci < cin; ++ci)
          for (int r = 0; r < 2; ++r)
            for (int s = 0; s < 2; ++s)
              for (int l = 0; l < kTileCo; ++l) {
                const int co = cb * kTileCo + l;
                *p++ = weight_[((size_t(ci) * cout + co) * 4 + tap(a, r)) * 4 + tap(b, s)];
              }
  gate_packed_.resize(size_t(ncb) * cout * kTileCo);
  p = gate_packed_.data();
  for (int cb = 0; cb < ncb; ++cb)
    for (int ci = 0; ci < cout; ++ci)
      for (int l = 0; l < kTileCo; ++l) *p++ = gate_weight_[size_t(cb * kTileCo + l) * cout + ci];
}

bool GatedUpsampler::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return cout_ % kTileCo == 0 && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// The definition: one output sample at a time, in the order the header states.
void GatedUpsampler::run_rows_scalar(const float* xpad, int h, int w, int wpad, int i0, int i1,
                                     float* out) const {
  const int C = cout_, W2 = 2 * w;
  std::vector<float> p(C), l(C);
  for (int i = i0; i < i1; ++i)
    for (int a = 0; a < 2; ++a)
      for (int X = 0; X < W2; ++X) {
        const int j = X >> 1, b = X & 1;
        for (int co = 0; co < C; ++co) {
          float acc = bias_[co];
          for (int ci = 0; ci < cin_; ++ci) {
            const float* wk = &weight_[(size_t(ci) * C + co) * 16];
            for (int r = 0; r < 2; ++r) {
              const float* xr = xpad + (size_t(ci) * (h + 2) + i + a + r) * wpad + j + b;
              for (int s = 0; s < 2; ++s) acc = std::fma(wk[tap(a, r) * 4 + tap(b, s)], xr[s], acc);
            }
          }
          p[co] = acc;
          l[co] = leaky(acc, alpha_);
        }
        float* o = out + size_t(2 * i + a) * W2 + X;
        for (int co = 0; co < C; ++co) {
          float g = gate_bias_[co];
          const float* wg = &gate_weight_[size_t(co) * C];
          for (int ci = 0; ci < C; ++ci) g = std::fma(wg[ci], l[ci], g);
          o[size_t(co) * (2 * h) * W2] = p[co] * g;
        }
      }
}

namespace {

// 16 channels x 6 pixels: acc[v][p] += w[v] * x[p] over `steps` (weights: 16 floats per step, pixels: one
// float per step at x + p + offsets[step]).  Shared by the convolution and the gate.
#define JPEGAI_TARGET_AVX2FMA __attribute__((target("avx2,fma")))

// The micro-kernel: 16 channels x 6 pixels, acc = init; for each step k: acc[v][q] += w[k][v] * x[off[k] + q * ps]
// (w: 16 floats per step, consecutive; x: one broadcast float per pixel), then the 12 vectors go to
// dst + q * ds (+ 8 for the second ymm).  Twelve named accumulators and one step per iteration keep the
// whole tile in registers (an array of them made the compiler spill).
JPEGAI_TARGET_AVX2FMA __attribute__((noinline)) void tile_16x6(const float* w, const float* x, const ptrdiff_t* off, int steps,
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

}  // namespace

JPEGAI_TARGET_AVX2FMA void GatedUpsampler::run_rows_avx2(const float* xpad, int h, int w, int wpad, int i0,
                                                         int i1, float* out) const {
  const int C = cout_, W2 = 2 * w, ncb = C / kTileCo;
  const size_t plane = size_t(h + 2) * wpad;
  // pixel-major row buffers: [X][channel], X = 2j + b the output column
  std::vector<float> prow(size_t(W2) * C), lrow(size_t(W2) * C), orow(size_t(W2) * C);
  const __m256 alpha = _mm256_set1_ps(alpha_), zero = _mm256_setzero_ps();
  // step offsets into the padded input (ci, r, s in the definition's order) and into a gate row (channel ci)
  std::vector<ptrdiff_t> conv_off(size_t(4) * cin_), gate_off(C);
  for (int ci = 0, k = 0; ci < cin_; ++ci)
    for (int r = 0; r < 2; ++r)
      for (int s = 0; s < 2; ++s) conv_off[k++] = ptrdiff_t(ci * plane + size_t(r) * wpad + s);
  for (int ci = 0; ci < C; ++ci) gate_off[ci] = ci;
  for (int i = i0; i < i1; ++i)
    for (int a = 0; a < 2; ++a) {
      // 1. the transposed convolution, phase (a, b), 16 channels x 6 pixels of j at a time
      for (int b = 0; b < 2; ++b)
        for (int j0 = 0; j0 < w; j0 += kTilePx) {
          const int j = std::min(j0, w - kTilePx);  // the last tile overlaps: the same values again
          for (int cb = 0; cb < ncb; ++cb) {  // the tile's inputs stay in L1 while the weights stream
            const float* wbase = conv_packed_.data() + (size_t((a * 2 + b) * ncb + cb) * cin_) * 4 * kTileCo;
            tile_16x6(wbase, xpad + size_t(i + a) * wpad + j + b, conv_off.data(), 4 * cin_, 1, &bias_[cb * kTileCo],
                      nullptr, 0, prow.data() + size_t(2 * j + b) * C + cb * kTileCo, 2 * size_t(C));
          }
        }
      // 2. LeakyReLU (a select, as the definition)
      for (size_t k = 0; k < prow.size(); k += kLanes) {
        const __m256 v = _mm256_loadu_ps(&prow[k]);
        _mm256_storeu_ps(&lrow[k], _mm256_blendv_ps(_mm256_mul_ps(v, alpha), v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ)));
      }
      // 3. the gate (1x1, C -> C) and the product, 16 channels x 6 output columns at a time
      for (int cb = 0; cb < ncb; ++cb)
        for (int X0 = 0; X0 < W2; X0 += kTilePx) {
          const int X = std::min(X0, W2 - kTilePx);
          tile_16x6(gate_packed_.data() + size_t(cb) * C * kTileCo, lrow.data() + size_t(X) * C, gate_off.data(), C,
                    size_t(C), &gate_bias_[cb * kTileCo], prow.data() + size_t(X) * C + cb * kTileCo, size_t(C),
                    orow.data() + size_t(X) * C + cb * kTileCo, size_t(C));
        }
      // 4. [X][channel] -> the output planes' row 2i + a
      const size_t ostride = size_t(2 * h) * W2;  // one output plane
      float* o = out + size_t(2 * i + a) * W2;
      int X = 0;
      for (; X + 8 <= W2; X += 8)
        for (int c0 = 0; c0 < C; c0 += 8) transpose8(orow.data() + size_t(X) * C + c0, C, o + c0 * ostride + X, ostride);
      for (; X < W2; ++X)
        for (int c = 0; c < C; ++c) o[c * ostride + X] = orow[size_t(X) * C + c];
    }
}

void GatedUpsampler::run(const float* x, int h, int w, float* out, unsigned threads, bool reference) const {
  if (h < 1 || w < 1) throw ArgumentError("GatedUpsampler: empty input");
  const int wpad = w + 2;
  std::vector<float> xpad(size_t(cin_) * (h + 2) * wpad, 0.0f);
  for (int ci = 0; ci < cin_; ++ci)
    for (int y = 0; y < h; ++y)
      std::memcpy(&xpad[(size_t(ci) * (h + 2) + y + 1) * wpad + 1], x + (size_t(ci) * h + y) * w, sizeof(float) * w);
  const bool simd = !reference && has_simd_kernel() && w >= kTilePx;
  const size_t tasks = (size_t(h) + kRowsPerTask - 1) / kRowsPerTask;
  global_pool().parallel_for(tasks, threads, [&](size_t t) {
    const int i0 = int(t) * kRowsPerTask, i1 = std::min(h, i0 + kRowsPerTask);
    if (simd)
      run_rows_avx2(xpad.data(), h, w, wpad, i0, i1, out);
    else
      run_rows_scalar(xpad.data(), h, w, wpad, i0, i1, out);
  });
}

}  // namespace jpegai
