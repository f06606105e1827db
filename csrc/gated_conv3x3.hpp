// The synthesis' gated 3x3 block in C++: a 3x3 convolution (stride 1, zero padding 1, Cin -> Cout, bias)
// followed by the VM gate, out = u * (Wg · LeakyReLU(u) + bg) — the `mid` block of the vm33 synthesis, 39 % of
// the BOP luma graph's MACs.  The convolution runs as Winograd F(4x4, 3x3): 36 multiply-adds per input channel
// for a 4x4 output tile where the direct form needs 144 (4x fewer; F(2x2, 3x3), used before 2026-12-08, saves
// 2.25x), so it beats ONNX Runtime's direct NCHWc kernel at the same GEMM throughput.
//
// Read me first:
//  * Float, not integer: equal to ONNX Runtime's graph to float rounding (the Winograd transforms add, subtract
//    and scale by up to 8 and 1/24, so the error is a few times F(2x2, 3x3)'s; tests/test_gated_upsampler.py
//    bounds it), and equal to its scalar definition bit for bit — the
//    AVX2 path vectorises over channels only, so every output value sees the same IEEE operations in the same
//    order (the order is written out in gated_conv3x3.cpp, `definition`).
//  * The transformed weights U = G g Gᵀ are computed once in float64 and rounded to float32: they are part of
//    the definition, shared by both paths.
//  * Rows of 4x4 output tiles are independent tasks: any thread count gives the same bytes.
//  * The AVX2 path needs Cin a multiple of 8 and Cout of 16, else the scalar definition runs.  A picture under 24
//    samples across gets tiles over its zero padding (the GEMM takes 6 tiles at a time); their outputs are dropped.
#pragma once

#include <vector>

namespace jpegai {

class GatedConv3x3 {
 public:
  // weight [cout][cin][3][3] (ONNX Conv layout), bias [cout], gate_weight [cout][cout], gate_bias [cout].
  // gate_weight null: the synthesis head's residual block instead, out = x + ReLU(conv(x) + bias) (cin = cout;
  // ReLU as the select v >= 0 ? v : 0); with `plain` as well: the convolution alone, out = conv(x) + bias (the
  // vr_bop synthesis' `widen`).
  GatedConv3x3(const float* weight, const float* bias, const float* gate_weight, const float* gate_bias, int cin,
               int cout, float alpha, bool plain = false);

  // x [cin][h][w] (nhwc_in: [h][w][cin], as a GatedUpsampler writes it with nhwc_out) -> out [cout][h][w]
  // (nhwc_out: [h][w][cout]).  reference: the scalar definition (the test oracle).
  void run(const float* x, int h, int w, float* out, unsigned threads, bool reference = false,
           bool nhwc_in = false, bool nhwc_out = false) const;

  bool residual() const { return residual_; }
  bool gated() const { return !residual_ && !plain_; }

  int cin() const { return cin_; }
  int cout() const { return cout_; }
  bool has_simd_kernel() const;  // channels fit the AVX2 tiles and the CPU has AVX2 + FMA

 private:
  void tile_rows_scalar(const float* xt, int cols, int h, int w, int ty0, int ty1, float* out, bool nhwc) const;
  void tile_rows_avx2(const float* xt, int cols, int h, int w, int ty0, int ty1, float* out, bool nhwc) const;
  void finish_rows_scalar(const float* xt, int cols, const float* prow, int W, int h, int w, int y0, float* out,
                          bool nhwc) const;

  int cin_, cout_;
  bool residual_, plain_;  // neither: gated
  float alpha_;
  std::vector<float> u_;  // transformed weights [36 positions][cin][cout]
  std::vector<float> bias_, gate_weight_, gate_bias_;
  std::vector<float> u_packed_, gate_packed_;  // AVX2: [pos][co16][cin][16], [co16][ci][16]
};

}  // namespace jpegai
