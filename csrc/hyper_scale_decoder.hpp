// The integer hyper-scale decoder (HSD): z_hat -> Q7 log-sigma, bit-exact on every machine.
//
//   x = z_hat
//   for conv in (conv1 1x1 C->C, conv2 3x3 C->C, conv3 1x1 C->16C):
//       x   = clamp(x, -128, 127)
//       acc = bias[o] + sum w[o,c,ky,kx] * x[c, i+ky-k/2, j+kx-k/2]     (zero padding, int32)
//       x   = acc >> shift[o]                                            (arithmetic: floor)
//       x   = max(x, 0)                                                  (conv1, conv2 only)
//   s[c, 4i+dy, 4j+dx] = x[16c + 4dy + dx, i, j]     (PixelShuffle(4)), cropped to the latent size
//   s = min(|s|, kMaxLogSigma)
//
// Read me first:
//  * The definition is training/hyper_scale_int.py (int_forward); tests/reference/ has the numpy
//    transcription that both this file and the torch model are checked against.
//  * int32 accumulation cannot overflow: the constructor rejects layers whose worst case
//    |bias| + 128 * sum|w| reaches 2^31, so no input can make the arithmetic wrap (or be UB).
//  * Two kernels: a plain direct convolution (the reference) and a layout-transformed one whose inner
//    loop is an int8 dot product that the compiler vectorises (target_clones: AVX2/AVX-512/baseline).
//    Integer sums do not depend on the order of addition, so both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "residual_coder.hpp"  // Kernel

namespace jpegai {

constexpr int32_t kMaxLogSigma = 63 * 128 - 1;  // (levels - 1) * 128 - 1, still index 63

struct IntConvLayer {
  int in = 0, out = 0, k = 1;     // k = 1 or 3
  std::vector<int8_t> weight;     // out x in x k x k
  std::vector<int32_t> bias;      // out
  std::vector<int8_t> shift;      // out, 0..30
};

class HyperScaleDecoder {
 public:
  // Throws ArgumentError unless conv1 is 1x1 C->C, conv2 3x3 C->C, conv3 1x1 C->16C with shifts in
  // [0, 30] and no possible int32 overflow.
  HyperScaleDecoder(IntConvLayer conv1, IntConvLayer conv2, IntConvLayer conv3);

  int channels() const { return channels_; }

  // z: channels x hz x wz (int16; values are clamped as above).  s: channels x hl x wl int32 with
  // 1 <= hl <= 4 hz, 1 <= wl <= 4 wz.
  void forward(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
               Kernel kernel = Kernel::kAuto) const;

 private:
  void forward_reference(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s) const;
  void forward_fast(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads) const;

  int channels_;
  IntConvLayer layers_[3];
  // Fast-kernel weights: out x (k*k) x in (input channels innermost, contiguous with activations).
  std::vector<int8_t> packed_[3];
};

}  // namespace jpegai
