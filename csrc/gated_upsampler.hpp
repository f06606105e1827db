// The synthesis up-sampler block in C++: ConvTranspose k4 s2 p1 (Cin -> Cout, bias) followed by the VM
// synthesis' gate, out = u * (Wg · LeakyReLU(u) + bg) with u the transposed convolution's output and Wg a
// 1x1 convolution (Cout -> Cout).  ONNX Runtime's CPU ConvTranspose has no blocked (NCHWc) kernel and runs at
// about half the throughput of its Conv (issue 12: 35 of 78 ms of the vm33 BOP luma synthesis); this block is
// the same function as one fused pass.
//
// Read me first:
//  * Output phase (a, b) — sample (2i+a, 2j+b) — is a 2x2 convolution of the 1-padded input: rows i+a+r,
//    columns j+b+s (r, s in {0, 1}), kernel taps (3-a-2r, 3-b-2s).  Each phase runs as Winograd F(4x4, 2x2):
//    25 multiply-adds per input channel for a 4x4 tile of that phase where the direct form needs 64 (2.56x
//    fewer; F(2x2, 2x2), used before 2026-12-08, 1.78x).
//  * Float, not integer: the pixel domain is float (docs/stages.md).  It equals ONNX Runtime's graph to float
//    rounding (tests/test_gated_upsampler.py), and its scalar definition (gated_upsampler.cpp, `definition`)
//    bit for bit: the AVX2 path vectorises over channels only, so every output value sees the same IEEE
//    operations in the same order.  Every multiply-add is an explicit fused one; the file is built with
//    -ffp-contract=off so the compiler adds none.
//  * The transformed weights U = G g Gᵀ are computed once in float64 and rounded to float32: part of the
//    definition, shared by both paths.
//  * Rows of 4x4 tiles are independent tasks (tile row t writes output rows 8t .. 8t+7): any thread count
//    gives the same bytes.
//  * The AVX2 path needs Cin a multiple of 8 and Cout of 16 (the VM graphs: 32, 64, 96, 128, 192 channels), else
//    the scalar definition runs.  An input under 24 samples across gets tiles over its zero padding (the GEMM
//    takes 6 tiles at a time); their outputs are dropped.
#pragma once

#include <vector>

namespace jpegai {

class GatedUpsampler {
 public:
  // weight [cin][cout][4][4] (ONNX ConvTranspose layout), bias [cout], gate_weight [cout][cout] (1x1 Conv,
  // [out][in]), gate_bias [cout], alpha: the LeakyReLU slope.  gate_weight and gate_bias null: the transposed
  // convolution alone, out = u (the vr_bop synthesis' up-samplers).
  GatedUpsampler(const float* weight, const float* bias, const float* gate_weight, const float* gate_bias,
                 int cin, int cout, float alpha);

  // x [cin][h][w] (nhwc_in: [h][w][cin]) -> out [cout][2h][2w] (nhwc_out: [2h][2w][cout]).  Pixel-major
  // hand-overs between C++ blocks spare two transposes.  reference: the scalar definition (the test oracle).
  void run(const float* x, int h, int w, float* out, unsigned threads, bool reference = false,
           bool nhwc_in = false, bool nhwc_out = false) const;

  int cin() const { return cin_; }
  int cout() const { return cout_; }
  bool gated() const { return gated_; }
  bool has_simd_kernel() const;  // the AVX2 tiles apply (channels) and the CPU has AVX2 + FMA

 private:
  void tile_rows_scalar(const float* xt, int cols, int h, int w, int t0, int t1, float* out, bool nhwc) const;
  void tile_rows_avx2(const float* xt, int cols, int h, int w, int t0, int t1, float* out, bool nhwc) const;
  void finish_rows_scalar(const float* prow, int W8, int h, int w, int y0, float* out, bool nhwc) const;

  int cin_, cout_;
  bool gated_;
  float alpha_;
  std::vector<float> u_;  // transformed weights [phase 4][position 25][cin][cout]
  std::vector<float> bias_, gate_weight_, gate_bias_;
  std::vector<float> u_packed_, gate_packed_;  // AVX2: [phase][pos][co16][cin][16], [co16][ci][16]
};

}  // namespace jpegai
