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
//  * Kernels: forward_reference, a plain direct convolution (Kernel::kScalar, the normative scalar
//    definition), and forward_fast, im2col + a register-tiled integer GEMM per layer: activations
//    int16 position-major, weights int16 packed in blocks of 16 outputs x pairs of taps, each tile
//    (16-32 outputs x up to 12 positions) accumulated in registers with pmaddwd (exact: a product
//    pair is at most 2 * 128 * 128 in magnitude; vpdpwssd with AVX512_VNNI) and finished in registers
//    (HsdJob: shift, ReLU/clamp, or abs/clamp scattered straight into the PixelShuffled output).  The
//    tiles are csrc/int16_gemm.hpp's, shared with the mean path.  Paths: AVX-512BW (+VNNI), AVX2
//    (explicit intrinsics, chosen from cpu_features(); JPEGAI_FAST_SIMD=avx2 caps at AVX2, =avx512 drops
//    VNNI) and the same tiling in plain C++ (the baseline twin; JPEGAI_FAST_SIMD=scalar forces it).
//    Integer sums do not depend on the order of addition and no partial sum can leave int32 (see
//    above), so every kernel gives identical results.
//  * forward_legacy is the previous fast kernel (one int8 dot product per position, output and tap),
//    kept only so that bench/test_hyper_scale.py can time old and new side by side in one run; it is
//    reached only with JPEGAI_FAST_HSD_LEGACY=1 in the environment (read per call, bench-only).
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
  // 1 <= hl <= 4 hz, 1 <= wl <= 4 wz.  kernel: kScalar = forward_reference; kAuto = forward_fast with
  // the CPU's best tile set; kAvx2 = forward_fast capped at AVX2.  All give the same integers.
  void forward(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
               Kernel kernel = Kernel::kAuto) const;

 private:
  void forward_reference(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s) const;
  void forward_fast(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
                    Kernel kernel) const;
  void forward_legacy(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads) const;

  int channels_;
  int cs_;  // channels rounded up to a multiple of 16: the activation stride of the fast kernel
  IntConvLayer layers_[3];
  // Fast kernel, per layer: weights as [out/16][k*k*cs_/2][16][2] int16 (output block, tap-major
  // pair of inputs, output lane, pair element; zero for padded outputs and inputs), bias and shift
  // as int32 padded to whole 16-output blocks (0 for the padding).
  std::vector<int16_t> gemm_w_[3];
  std::vector<int32_t> gemm_bias_[3], gemm_shift_[3];
  // Legacy kernel weights: out x (k*k) x in (input channels innermost, contiguous with activations).
  std::vector<int8_t> packed_[3];
};

}  // namespace jpegai
