// The synthesis' output head in C++: out = offset + scale * crop(DepthToSpace_CRD(W x + b, r)), with W a 1x1
// convolution (Cin -> Cimg r², the last layer of every shipped synthesis graph), r the depth-to-space block (4 in
// vm33 and vr_bop), the crop the picture's size (top-left) and scale / offset the graph's ×128 + 127.5.  In ONNX
// Runtime this tail took its own NCHW reorders and four full-resolution passes (~2-3 ms of a Kodak BOP decode).
//
// Read me first:
//  * Float, not integer: equal to ONNX Runtime's graph to float rounding (its convolution sums in another
//    order), and to its scalar definition bit for bit: v = b[co], then v = fma(W[co][ci], x[ci], v) for ci
//    ascending, then (v * scale) + offset as two roundings (the graph's Mul, then Add).
//  * CRD: image channel c, row offset i, column offset j come from conv channel (c r + i) r + j.
//  * Rows of the input are independent tasks (each writes its r output rows): any thread count, same bytes.
//  * The AVX2 path needs Cin a multiple of 8, Cimg r² of 16 and a picture at least 6 samples wide; else the scalar
//    definition runs.
#pragma once

#include <cstddef>
#include <vector>

namespace jpegai {

class OutputHead {
 public:
  // weight [cout][cin] (1x1 Conv, [out][in]), bias [cout] or null (zeros), block r: cout = Cimg r².
  OutputHead(const float* weight, const float* bias, int cin, int cout, int block, float scale, float offset);

  // x [cin][h][w] (nhwc_in: [h][w][cin]) -> out [cout / r²][oh][ow], oh <= r h, ow <= r w (the crop).
  // reference: the scalar definition (the test oracle).
  void run(const float* x, int h, int w, int oh, int ow, float* out, unsigned threads, bool reference = false,
           bool nhwc_in = false) const;

  int cin() const { return cin_; }
  int cout() const { return cout_; }
  int block() const { return block_; }
  int channels() const { return cout_ / (block_ * block_); }  // image channels out
  bool has_simd_kernel() const;  // channels fit the AVX2 tiles and the CPU has AVX2 + FMA

 private:
  // one input row y: v [w][cout] pixel-major, then the scatter into the output's rows r y .. r y + r - 1
  void row_scalar(const float* xt, int w, float* v) const;
  void row_avx2(const float* xt, int w, float* v) const;
  void scatter(const float* v, int y, int w, int oh, int ow, float* out) const;

  int cin_, cout_, block_;
  float scale_, offset_;
  std::vector<float> weight_, bias_;  // [cout][cin], [cout]
  std::vector<float> packed_;         // AVX2: [co16][ci][16] (float_tiles::pack_1x1)
  std::vector<ptrdiff_t> ch_off_;     // AVX2: the tile's input-channel offsets 0 .. cin - 1
};

}  // namespace jpegai
