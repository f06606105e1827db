// The whole latent domain of a picture, one call each way.
//   decode: codestream -> z_hat -> hyper-scale decoder -> scale indices (gain, skip) -> residual symbols ->
//           hyper-mean decoder (psi) -> context model (mu) -> y_hat, for luma and chroma.
//   encode: z_hat and y (from the float analysis) -> the same integers -> SOZ / SORP / SORS payloads.
// Everything here is integer and exact; the float stages (analysis, synthesis) are ONNX graphs.
//
// Read me first:
//  * Stream layout: docs/bitstream.md; model integers: docs/model_format.md.  SOZ = ue(v) byte length
//    of the luma z payload, zero bits to a byte boundary, luma payload, chroma payload.
//  * Latent grid of a component: Hl = ceil(H / grid), Wl = ceil(W / grid), grid = 16 luma samples
//    (`meta.grid`, 16 or 32 per component; absent: 16 for both); z grid: ceil(Hl / 4) x ceil(Wl / 4).
//  * Channels at or above the header's coded_channels carry no symbols: their indices are forced to
//    255 (skip) before the residual is parsed, exactly as the encoder does (progressive decoding).
//  * Luma and chroma are independent until synthesis: each stage runs the two components as parallel
//    tasks, each also splitting its work (rows, substreams) over the remaining threads.  The stages are
//    separated so that their wall-clock times can be reported (seconds).
//  * The model file is parsed once, here (LatentModel): tables, HSD, gains and the fixed-point mean path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "container.hpp"
#include "factorized_coder.hpp"
#include "hyper_scale_decoder.hpp"
#include "mean_path.hpp"
#include "model_blob.hpp"

namespace jpegai {

constexpr int kLatentStride = 16;   // luma samples per latent sample (the default grid)
constexpr int kHyperStride = 4;     // latent samples per z sample

struct ComponentModel {
  int channels = 0;
  int grid = kLatentStride;           // luma samples per latent sample of this component
  std::unique_ptr<HyperScaleDecoder> hsd;
  std::unique_ptr<FactorizedModel> z_model;
  std::vector<int32_t> gain_q7;       // rate_points x channels
  std::vector<float> gain_f32;        // rate_points x channels: g = exp(o * LOG_STEP / 128) as trained
};

struct LatentSize {
  int h = 0, w = 0, z_h = 0, z_w = 0;
};

class LatentModel {
 public:
  explicit LatentModel(const ModelBlob& blob);  // throws ArgumentError on an inconsistent model
  const ComponentModel& component(int c) const { return comp_[c]; }
  const MeanPath& mean_path() const { return *mean_; }
  int skip_below() const { return skip_below_; }
  int rate_points() const { return rate_points_; }
  int z_offset() const { return z_offset_; }
  // The id streams of this model carry in their header (`meta.model_id`; absent: 1, the first model).
  int model_id() const { return model_id_; }
  LatentSize latent_size(int c, uint32_t height, uint32_t width) const;
  // Q7 log gain offsets of a rate point plus a header displacement, one per channel.
  std::vector<int32_t> offsets(int c, uint32_t rate_point, int32_t displacement) const;

 private:
  ComponentModel comp_[2];
  std::unique_ptr<MeanPath> mean_;
  int skip_below_ = 0, rate_points_ = 0, z_offset_ = 0, model_id_ = 1;
};

struct ComponentLatents {
  int channels = 0;
  LatentSize size;
  std::vector<int16_t> z;          // channels x z_h x z_w
  std::vector<int32_t> log_sigma;  // channels x h x w, HSD output + gain (Q7)   (inspection only)
  std::vector<uint8_t> index;      // channels x h x w, 255 = skipped
  std::vector<int16_t> residual;   // channels x h x w
  std::vector<float> y_hat;        // channels x h x w: q * 2^-y_frac, exact
};

// Wall-clock seconds of the stages of one decode_latents call (std::chrono::steady_clock).  The stages
// run one after another, each over both components (luma and chroma as parallel tasks), so they add up
// to the call's time.  hyper_scale includes gain, skip and the scale index map; context is the luma
// context loop and chroma mean with y_hat = mu + r / g.
struct LatentStageTimes {
  double parse = 0, z = 0, hyper_scale = 0, residual = 0, hyper_decoder = 0, context = 0;
};

struct PictureLatents {
  PictureHeader header;
  DisplayWindow window;  // the DWS segment's, or the header's size
  ComponentLatents comp[2];  // 0 luma, 1 chroma (4:0:0: comp[1] empty, channels 0)
  LatentStageTimes seconds;
};

// inspect = false: only y_hat (and the header) are kept; the integer arrays are freed as soon as they
// have been used, so a large picture never holds them next to the float latents.
PictureLatents decode_latents(const LatentModel& model, const uint8_t* data, size_t size, uint64_t max_pixels,
                              unsigned threads, bool inspect);

// The encoder's rate-independent latent work for one picture: z_hat, the HSD output and psi per component,
// computed once; code() then runs the rate-dependent part for each rate trial.
class PreparedLatents {
 public:
  // z[c]: channels x z_h x z_w int16; y[c]: channels x h x w float32 (copied); sizes from the picture size.
  // z[1] = y[1] = nullptr: monochrome (4:0:0), luma only; code() then returns an empty SORS and a SOZ whose
  // chroma part is empty.
  PreparedLatents(const LatentModel& model, uint32_t height, uint32_t width, const int16_t* const z[2],
                  const float* const y[2], unsigned threads);

  struct Payloads {
    std::vector<uint8_t> soz, sorp, sors;
  };
  // gains[c]: float32 per channel (the encoder's r = round((y - mu) g)); nullptr: the trained gains of the
  // rate point (only with displacement 0).  The float formula of displaced gains stays in one place (Python).
  Payloads code(uint32_t rate_point, const int32_t displacement[2], const float* const gains[2], uint32_t substreams,
                unsigned threads) const;
  const LatentSize& size(int c) const { return size_[c]; }
  int channels(int c) const { return model_.component(c).channels; }
  bool monochrome() const { return components_ == 1; }

 private:
  const LatentModel& model_;
  int components_ = 2;
  LatentSize size_[2];
  std::vector<int16_t> z_[2];
  std::vector<float> y_[2];
  std::vector<int32_t> s_[2];  // HSD output, no gain (Q7)
  Tensor16 psi_[2];
};

}  // namespace jpegai
