// The vr_bop synthesis' ResAU block in C++: out = x * (1 + Wmix · GConv3x3(ReLU6(x))), GConv3x3 a grouped 3x3
// convolution (16 channels per group, zero padding 1, no bias) and Wmix a 1x1 convolution (C -> C, no bias).
// Five of them run at the up-sampled resolutions of vr_bop's BOP synthesis; in ONNX Runtime each costs two
// NCHWc reorders besides its three element-wise passes.  Here it is one pass per output row.
//
// Read me first:
//  * Float, not integer: the pixel domain is float (docs/stages.md).  Equal to ONNX Runtime's graph to float
//    rounding (tests/test_gated_upsampler.py), and to its scalar definition (resau_block.cpp, `definition`) bit
//    for bit: the AVX2 path vectorises over output channels only, every output value sees the same fused
//    multiply-adds in the same order (built with -ffp-contract=off).
//  * The grouped convolution is direct, not Winograd: 144 multiply-adds per output channel and pixel do not
//    pay for the transforms.
//  * Rows are independent tasks: any thread count gives the same bytes.
//  * The AVX2 path needs C a multiple of 16 and a picture at least 6 samples wide; else the scalar definition
//    runs.
#pragma once

#include <vector>

namespace jpegai {

class ResAUBlock {
 public:
  static constexpr int kGroup = 16;  // channels per group of the spatial convolution (training/blocks.py ResAU)

  // spatial_weight [c][16][3][3] (ONNX grouped Conv layout, c / 16 groups), mix_weight [c][c] (1x1 Conv, [out][in]).
  ResAUBlock(const float* spatial_weight, const float* mix_weight, int c);

  // x [c][h][w] (nhwc_in: [h][w][c]) -> out [c][h][w] (nhwc_out: [h][w][c]).  reference: the scalar definition.
  void run(const float* x, int h, int w, float* out, unsigned threads, bool reference = false, bool nhwc_in = false,
           bool nhwc_out = false) const;

  int cin() const { return c_; }
  int cout() const { return c_; }
  bool has_simd_kernel() const;  // C fits the AVX2 tiles and the CPU has AVX2 + FMA

 private:
  // xt: the input, pixel-major and zero-padded [(h + 2) rows][(w + 2) cols][c]; one output row y
  void row_scalar(const float* xt, int h, int w, int y, float* out, bool nhwc) const;
  void row_avx2(const float* xt, int h, int w, int y, float* out, bool nhwc) const;

  int c_;
  std::vector<float> spatial_, mix_;  // as given: [c][16][3][3], [c][c]
  std::vector<float> spatial_packed_, mix_packed_;  // AVX2: [group][tap 9][16 in][16 out], [co16][ci][16]
  std::vector<float> ones_;
};

}  // namespace jpegai
