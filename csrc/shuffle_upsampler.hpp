// The SOP up-sampler of vr_bop's synthesis in C++: zero-pad one sample at the bottom and right, 2x2 convolution
// (Cin -> 4 Cout, bias), depth-to-space by 2 in CRD order (PyTorch's pixel_shuffle):
//   out(2i + a, 2j + b, co) = bias[4co + 2a + b] + sum_{r, s in {0, 1}, ci} W[4co + 2a + b][ci][r][s] x(i + r, j + s, ci)
// One pass per input row writes two output rows; ONNX Runtime runs it as Pad, Conv (with two NCHWc reorders)
// and DepthToSpace.
//
// Read me first:
//  * Float, not integer: equal to ONNX Runtime's graph to float rounding, and to its scalar definition
//    (shuffle_upsampler.cpp, `definition`) bit for bit: the AVX2 path vectorises over output channels only, and
//    every output value sees the same fused multiply-adds in the same order (built with -ffp-contract=off).
//  * Direct, not Winograd: a 2x2 kernel gains little from the transforms.
//  * Input rows are independent tasks: any thread count gives the same bytes.
//  * The AVX2 path needs Cout a multiple of 8 and an input at least 6 samples wide; else the scalar definition
//    runs.
#pragma once

#include <vector>

namespace jpegai {

class ShuffleUpsampler {
 public:
  // weight [4 cout][cin][2][2] (ONNX Conv layout), bias [4 cout].
  ShuffleUpsampler(const float* weight, const float* bias, int cin, int cout);

  // x [cin][h][w] (nhwc_in: [h][w][cin]) -> out [cout][2h][2w] (nhwc_out: [2h][2w][cout]).  reference: the scalar
  // definition (the test oracle).
  void run(const float* x, int h, int w, float* out, unsigned threads, bool reference = false, bool nhwc_in = false,
           bool nhwc_out = false) const;

  int cin() const { return cin_; }
  int cout() const { return cout_; }
  bool has_simd_kernel() const;  // channels fit the AVX2 tiles and the CPU has AVX2 + FMA

 private:
  // xt: the input, pixel-major and zero-padded [(h + 2) rows][(w + 2) cols][cin]; one input row i -> rows 2i, 2i + 1
  void row_scalar(const float* xt, int h, int w, int i, float* out, bool nhwc) const;
  void row_avx2(const float* xt, int h, int w, int i, float* out, bool nhwc) const;

  int cin_, cout_;
  std::vector<float> weight_, bias_;  // as given
  std::vector<float> packed_;         // AVX2: [oc block of 16][step k = 2 cin r + cin s + ci][16]
};

}  // namespace jpegai
