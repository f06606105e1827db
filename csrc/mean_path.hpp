// The fixed-point mean path: hyper-mean decoder z_hat -> psi, the luma 4-stage context model, the chroma
// mean, and the latent reconstruction y_hat = mu + r / g -- all integer, bit-exact on every machine.
//
// Read me first:
//  * Normative definition: docs/model_format.md "Fixed-point mean path"; the numpy transcription in
//    training/reference_decoder.py (mean_*) is what this file is tested against, bit for bit.
//  * Every tensor is int16 with a power-of-two scale per tensor (value = q * 2^-frac, frac from the model).
//    A layer: acc = bias + sum w * x in int32 (int8 weights), then a rounding right shift by a
//    per-output-channel amount, saturation to int16, then the activation (ReLU or ReLU6 = 6 << frac_out).
//  * int32 cannot overflow: the loader rejects a layer whose |bias| + 32768 * sum|w| reaches 2^31, so no
//    partial sum of any kernel, in any order of addition, can leave int32 (or be UB).
//  * The gain division is integer too: 1/g = m * 2^(n - 30) from the Q7 log offset t by a fixed integer
//    exp2 (inverse_gain), so the encoder and every decoder rebuild the same y_hat, the context input
//    of the next stage.  The encoder's r = round((y - mu) * g) is float and need not be exact.
//  * Topology comes from the model file (docs/model_format.md): the hyper-mean decoder is a layer list
//    (`mean.topology` absent: the four layers c1, up, c2, c3 making psi directly), and it either makes psi
//    (4C channels on the half latent grid) or mu (C channels on the latent grid, then split into the four
//    2x2 phases = psi).  A transposed conv's output is cropped to the grid it feeds: ceil(final / 2^u),
//    u = transposed convs still to come.  `context_residual`: the luma stage mean is psi_s + fusion_s.
//  * Kernel (mean_path.cpp run_layer_fast): tensors are HWC int16 (channels innermost); every layer is an
//    int16 x int16 -> int32 GEMM on csrc/int16_gemm.hpp's register-tiled tiles (pmaddwd, or vpdpwssd with
//    AVX512_VNNI): weights packed at load time ([phase][group][16-output block][tap-major channel pairs]
//    [16][2], MeanLayer::gemm_*), activations read straight from the HWC input through a per-layer table of
//    pointers (tap x position; a zero row outside the picture) -- no im2col copy, except for an odd group
//    width, which packs zero-padded panels.  A transposed conv is four 2 x 2-tap convs on the input grid,
//    one per output parity.  The epilogue (MeanJob) rounds, saturates, activates and stores in registers;
//    the SIMD epilogues round without the int64 of the definition: t = acc >> max(s-1, 0), (t >> b) + (t & b)
//    with b = (s > 0).  Tile sets: AVX-512BW (+VNNI) 32 outputs x 12 positions, AVX2 16 x 6, the same tiling
//    in plain C++ 16 x 4 (the baseline twin), chosen from cpu_features(): JPEGAI_FAST_SIMD=scalar forces the
//    twin, =avx2 caps at AVX2, =avx512 drops VNNI; Kernel::kScalar / kAvx2 pick them per call (tests).
//    Tasks (group, output tile, chunk of position tiles) write disjoint outputs: results never depend on the
//    thread count.  Integer sums do not depend on the order of addition, so every tile set is bit-exact.
//  * Context model (reconstruct): stage s > 0 reads the decoded phases in place (View16, first s C channels of
//    a 3C-channel tensor); the decoder gathers the residuals by phase into an HWC copy (DecoderPhases: each
//    CHW plane read in order), runs the stages on it and scatters y_hat back.
//  * The previous kernel (im2col per output row + one int16 dot product per pixel and output, target_clones)
//    and the previous reconstruct loops (reconstruct_legacy) are kept only so that bench/test_mean_path.py
//    can time old and new in one run: JPEGAI_FAST_MEAN_LEGACY=1 in the environment (read per call,
//    bench-only) selects them.
//  * On a CPU without AVX-512, tools/avx512_emulated.sh runs the tests against a build whose AVX-512 tiles
//    are emulated by SIMDe (the normal run reaches only the AVX2 and baseline tiles there).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model_blob.hpp"
#include "residual_coder.hpp"  // Kernel

namespace jpegai {

enum class MeanLayerKind : int32_t { kConv = 0, kConvTranspose4x4s2 = 1 };
// kLeakyRelu: q < 0 -> (41 q + 2^11) >> 12, i.e. slope 41/4096 = 0.01001 (the VM's 0.01) rounded half up.
enum class MeanActivation : int32_t { kNone = 0, kRelu = 1, kRelu6 = 2, kLeakyRelu = 3 };

// How the hyper-mean decoder's output becomes psi.
enum class HyperMeanOutput : int32_t { kPsi = 0, kMeanOnLatentGrid = 1 };

struct MeanLayer {
  MeanLayerKind kind = MeanLayerKind::kConv;
  int in = 0, out = 0, k = 1, groups = 1;
  int frac_in = 0, frac_out = 0;
  MeanActivation act = MeanActivation::kNone;
  std::vector<int8_t> weight;   // out x (in / groups) x k x k (transposed conv: out x in x 4 x 4)
  std::vector<int32_t> bias;    // out
  std::vector<int8_t> shift;    // out, 0..31
  std::vector<int16_t> packed;  // out x taps x (in / groups): the legacy kernel's dot-product layout
  // The fast kernel (csrc/int16_gemm.hpp): weights [phase][group][block][kp][16][2] int16 (phase: the 4
  // output parities (py, px) of a transposed conv, else one; block: 16 outputs of the group; kp = taps x
  // ceil(in_g / 2) pairs of the tap-major reduction; zero for padding), and per output, padded to whole
  // blocks per group ([group][block][16]): bias, shift, and the shift split max(shift - 1, 0), shift > 0
  // of the SIMD rounding (mean_path.cpp, MeanJob).
  int gemm_kp = 0, gemm_blocks = 0;
  std::vector<int16_t> gemm_w;
  std::vector<int32_t> gemm_bias, gemm_shift, gemm_shift_a, gemm_shift_b;
};

// A layer read from blob sections <prefix>.{weight,bias,shift,meta}; throws ArgumentError if inconsistent.
// out < 0: the output channel count is taken from the weight section's shape.
MeanLayer load_mean_layer(const ModelBlob& blob, const std::string& prefix, int in, int out);

// 1/g of a Q7 log offset t as m * 2^(n - 30), m in [2^30, 2^31): g = exp(t * LOG_STEP / 128).
struct InverseGain {
  int64_t mantissa;
  int exponent;
};
InverseGain inverse_gain(int32_t t);

// HWC tensor.
struct Tensor16 {
  int h = 0, w = 0, c = 0;
  std::vector<int16_t> v;
};

// One layer on an HWC tensor (conv: same size out; transposed conv: 2x, cropped to out_h x out_w).
// kernel: kAuto = the CPU's best tile set, kAvx2 = capped at AVX2, kScalar = the plain C++ tiles (the
// baseline twin); all give the same integers.  JPEGAI_FAST_MEAN_LEGACY=1 (bench-only) runs the legacy kernel.
Tensor16 run_mean_layer(const MeanLayer& L, const Tensor16& x, int out_h, int out_w, unsigned threads,
                        Kernel kernel = Kernel::kAuto);

class MeanPath {
 public:
  MeanPath(const ModelBlob& blob, int luma_channels, int chroma_channels);  // ArgumentError if bad

  int y_frac(int comp) const { return y_frac_[comp]; }
  HyperMeanOutput hyper_output() const { return hyper_output_; }
  bool context_residual() const { return context_residual_; }

  // z: channels x hz x wz (CHW, integer z_hat) -> psi HWC [ceil(hl/2)][ceil(wl/2)][4C] (positions of the
  // even-padded latent outside hl x wl are 0 when psi is made from mu).
  Tensor16 hyper_decoder(int comp, const int16_t* z, int hz, int wz, int hl, int wl, unsigned threads,
                         Kernel kernel = Kernel::kAuto) const;

  // Latent reconstruction of one component.  psi from hyper_decoder; index C x hl x wl (255 = skip);
  // offsets[c] = Q7 log gain offset of channel c (rate point + header displacement).
  // Decoder: residual given (C x hl x wl), y == nullptr.  Encoder: y given (float32 C x hl x wl),
  // gain[c] the float32 gain; the residual is computed into residual_out.
  // y_hat_q: C x hl x wl int16 at y_frac(comp) (CHW).
  void reconstruct(int comp, const Tensor16& psi, const uint8_t* index, const int32_t* offsets, int hl, int wl,
                   const int16_t* residual, const float* y, const float* gain, int16_t* residual_out,
                   int16_t* y_hat_q, unsigned threads, Kernel kernel = Kernel::kAuto) const;

 private:
  int psi_frac(int comp) const { return hyper_[comp].back().frac_out; }
  // The previous form of reconstruct (bench-only: JPEGAI_FAST_MEAN_LEGACY=1); gm, gs: 1/g per channel.
  void reconstruct_legacy(int comp, const Tensor16& psi, const uint8_t* index, int hl, int wl, const int16_t* residual,
                          const float* y, const float* gain, int16_t* residual_out, int16_t* y_hat_q, unsigned threads,
                          const int64_t* gm, const int* gs) const;

  int channels_[2];
  int y_frac_[2];
  HyperMeanOutput hyper_output_ = HyperMeanOutput::kPsi;
  bool context_residual_ = false;
  std::vector<MeanLayer> hyper_[2];           // the hyper-mean decoder's layers, in order
  std::vector<MeanLayer> context_[3];         // stage s+1: 1x1 sC->C, grouped 3x3
  std::vector<MeanLayer> fusion_[4];          // stage s: 1x1, 1x1, 1x1
};

}  // namespace jpegai
