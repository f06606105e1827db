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

namespace jpegai {
namespace {

using namespace float_tiles;
constexpr int kRowsPerTask = 2;   // input rows per pool task (each makes 2 output rows per row)

// Kernel tap of output phase `phase` (0, 1) for padded offset `k` (0, 1) of the 2x2 phase convolution.
inline int tap(int phase, int k) { return 3 - phase - 2 * k; }

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
  gate_packed_ = pack_gate(gate_weight_, cout);
}

bool GatedUpsampler::has_simd_kernel() const {
  const CpuFeatures& f = cpu_features();
  return cout_ % kTileCo == 0 && f.avx2 && !f.baseline_only && __builtin_cpu_supports("fma");
}

// The definition: one output sample at a time, in the order the header states.
void GatedUpsampler::run_rows_scalar(const float* xpad, int h, int w, int wpad, int i0, int i1,
                                     float* out, bool nhwc) const {
  const int C = cout_, W2 = 2 * w;
  std::vector<float> prow(size_t(W2) * C);
  for (int i = i0; i < i1; ++i)
    for (int a = 0; a < 2; ++a) {
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
          prow[size_t(X) * C + co] = acc;
        }
      }
      gate_row_scalar(prow.data(), W2, C, gate_weight_.data(), gate_bias_.data(), alpha_,
                      out + size_t(2 * i + a) * W2 * (nhwc ? C : 1), size_t(2 * h) * W2, nhwc);
    }
}

JPEGAI_TARGET_AVX2FMA void GatedUpsampler::run_rows_avx2(const float* xpad, int h, int w, int wpad, int i0,
                                                         int i1, float* out, bool nhwc) const {
  const int C = cout_, W2 = 2 * w, ncb = C / kTileCo;
  const size_t plane = size_t(h + 2) * wpad;
  // pixel-major row buffers: [X][channel], X = 2j + b the output column
  std::vector<float> prow(size_t(W2) * C), lrow(size_t(W2) * C), orow(size_t(W2) * C);
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
      // 2. the gate and the product, transposed into the output planes' row 2i + a
      gate_row_avx2(prow.data(), W2, C, gate_packed_.data(), gate_bias_.data(), alpha_, lrow.data(), orow.data(),
                    out + size_t(2 * i + a) * W2 * (nhwc ? C : 1), size_t(2 * h) * W2, gate_off.data(), nhwc);
    }
}

void GatedUpsampler::run(const float* x, int h, int w, float* out, unsigned threads, bool reference,
                         bool nhwc_out) const {
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
      run_rows_avx2(xpad.data(), h, w, wpad, i0, i1, out, nhwc_out);
    else
      run_rows_scalar(xpad.data(), h, w, wpad, i0, i1, out, nhwc_out);
  });
}

}  // namespace jpegai
