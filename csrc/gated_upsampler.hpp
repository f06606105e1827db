// The synthesis up-sampler block in C++: ConvTranspose k4 s2 p1 (Cin -> Cout, bias) followed by the VM
// synthesis' gate, out = u * (Wg · LeakyReLU(u) + bg) with u the transposed convolution's output and Wg a
// 1x1 convolution (Cout -> Cout).  ONNX Runtime's CPU ConvTranspose has no blocked (NCHWc) kernel and runs at
// about half the throughput of its Conv (issue 12: 35 of 78 ms of the vm33 BOP luma synthesis); this block is
// the same function as one fused pass.
//
// Read me first:
//  * Float, not integer: the pixel domain is float (docs/stages.md).  It equals ONNX Runtime's graph to float
//    rounding (tests/test_gated_upsampler.py), and equals its own scalar reference bit for bit: the AVX2
//    kernel does the same IEEE operations in the same order per output sample — bias, then for each input
//    channel ci, kernel row r, kernel column s one fused multiply-add; LeakyReLU as a select; the gate's
//    fused multiply-adds over the channels in order; one multiply.  Build flags cannot change that: every
//    multiply-add is an explicit std::fma / _mm256_fmadd_ps.
//  * Output phase (a, b) — sample (2i+a, 2j+b) — reads the 1-padded input at rows i+a+r and columns j+b+s
//    (r, s in {0, 1}) with kernel taps (3-a-2r, 3-b-2s): the four phases are 2x2 convolutions of one input.
//  * Rows of the input are independent tasks (input row i writes output rows 2i and 2i+1): any thread count
//    gives the same bytes.
//  * The AVX2 tile is the 6 x 16 register tile of the classic sgemm micro-kernel: 16 output channels (two
//    ymm) x 6 pixels, 12 accumulators, the pixels broadcast, the weights loaded.  Channels must be multiples
//    of 16 for it (the VM graphs: 32, 64, 96, 128); other shapes run the scalar reference.
#pragma once

#include <cstdint>
#include <vector>

namespace jpegai {

class GatedUpsampler {
 public:
  // weight [cin][cout][4][4] (ONNX ConvTranspose layout), bias [cout], gate_weight [cout][cout] (1x1 Conv,
  // [out][in]), gate_bias [cout], alpha: the LeakyReLU slope.
  GatedUpsampler(const float* weight, const float* bias, const float* gate_weight, const float* gate_bias,
                 int cin, int cout, float alpha);

  // x [cin][h][w] -> out [cout][2h][2w] (nhwc_out: [2h][2w][cout], for a GatedConv3x3 that follows).
  // reference: the scalar definition (the test oracle).
  void run(const float* x, int h, int w, float* out, unsigned threads, bool reference = false,
           bool nhwc_out = false) const;

  int cin() const { return cin_; }
  int cout() const { return cout_; }
  bool has_simd_kernel() const;  // the AVX2 tile applies (channels) and the CPU has AVX2 + FMA

 private:
  void run_rows_scalar(const float* xpad, int h, int w, int wpad, int i0, int i1, float* out, bool nhwc) const;
  void run_rows_avx2(const float* xpad, int h, int w, int wpad, int i0, int i1, float* out, bool nhwc) const;

  int cin_, cout_;
  float alpha_;
  std::vector<float> weight_;  // as given, [cin][cout][4][4]: the scalar reference reads it
  std::vector<float> bias_, gate_weight_, gate_bias_;
  // AVX2 packing: conv_packed_[a][b][co16][ci][r][s][16], gate_packed_[co16][ci][16] (ci: the gate's input channel)
  std::vector<float> conv_packed_, gate_packed_;
};

}  // namespace jpegai
