// The integer latent domain of a picture, one call: codestream -> z_hat -> hyper-scale decoder ->
// scale indices (gain, skip) -> residual symbols, for luma and chroma.  Everything here is exact;
// the float stages (hyper-mean decoder, context model, synthesis) take these arrays from here.
//
// Read me first:
//  * Stream layout: docs/bitstream.md; model integers: docs/model_format.md.  SOZ = ue(v) byte length
//    of the luma z payload, zero bits to a byte boundary, luma payload, chroma payload.
//  * Latent grid: Hl = ceil(H / 16), Wl = ceil(W / 16); z grid: ceil(Hl / 4) x ceil(Wl / 4).
//  * Channels at or above the header's coded_channels carry no symbols: their indices are forced to
//    255 (skip) before the residual is parsed, exactly as the encoder does (progressive decoding).
//  * Luma and chroma are independent until synthesis: each stage (z, hyper-scale, residual) runs the two
//    components as parallel tasks, each also splitting its work (rows, substreams) over the remaining
//    threads.  The stages are separated so that their wall-clock times can be reported (seconds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "container.hpp"
#include "factorized_coder.hpp"
#include "hyper_scale_decoder.hpp"
#include "model_blob.hpp"

namespace jpegai {

constexpr int kLatentStride = 16;   // luma samples per latent sample
constexpr int kHyperStride = 4;     // latent samples per z sample

struct ComponentModel {
  int channels = 0;
  std::unique_ptr<HyperScaleDecoder> hsd;
  std::unique_ptr<FactorizedModel> z_model;
  std::vector<int32_t> gain_q7;  // rate_points x channels
};

class LatentModel {
 public:
  explicit LatentModel(const ModelBlob& blob);  // throws ArgumentError on an inconsistent model
  const ComponentModel& component(int c) const { return comp_[c]; }
  int skip_below() const { return skip_below_; }
  int rate_points() const { return rate_points_; }

 private:
  ComponentModel comp_[2];
  int skip_below_ = 0, rate_points_ = 0;
};

struct ComponentLatents {
  int channels = 0;
  std::vector<int16_t> z;         // channels x zh x zw
  std::vector<int32_t> log_sigma; // channels x hl x wl, HSD output + gain (Q7)
  std::vector<uint8_t> index;     // channels x hl x wl, 255 = skipped
  std::vector<int16_t> residual;  // channels x hl x wl
};

// Wall-clock seconds of the stages of one decode_latents call (std::chrono::steady_clock).  The stages
// run one after another, each over both components (luma and chroma as parallel tasks), so the four
// add up to the call's time.  hyper_scale includes gain, skip and the scale index map.
struct LatentStageTimes {
  double parse = 0, z = 0, hyper_scale = 0, residual = 0;
};

struct PictureLatents {
  PictureHeader header;
  int latent_h = 0, latent_w = 0, z_h = 0, z_w = 0;
  ComponentLatents comp[2];  // 0 luma, 1 chroma
  LatentStageTimes seconds;
};

PictureLatents decode_latents(const LatentModel& model, const uint8_t* data, size_t size, uint64_t max_pixels,
                              unsigned threads);

}  // namespace jpegai
