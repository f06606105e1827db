#include "hyper_scale_decoder.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

constexpr int kActMin = -128, kActMax = 127;
constexpr int kShuffle = 4;

int8_t clamp_act(int32_t v) { return int8_t(std::min(std::max(v, kActMin), kActMax)); }

void check_layer(const IntConvLayer& l, const char* name, int in, int out, int k) {
  const std::string n(name);
  if (l.in != in || l.out != out || l.k != k)
    throw ArgumentError(n + ": expected a " + std::to_string(k) + "x" + std::to_string(k) + " conv " +
                        std::to_string(in) + "->" + std::to_string(out));
  if (l.weight.size() != size_t(out) * in * k * k || l.bias.size() != size_t(out) || l.shift.size() != size_t(out))
    throw ArgumentError(n + ": tensor sizes do not match the layer shape");
  for (int o = 0; o < out; ++o) {
    if (l.shift[o] < 0 || l.shift[o] > 30) throw ArgumentError(n + ": shift outside [0, 30]");
    int64_t worst = std::llabs(int64_t(l.bias[o]));
    for (size_t i = 0; i < size_t(in) * k * k; ++i) worst += 128 * std::llabs(int64_t(l.weight[size_t(o) * in * k * k + i]));
    if (worst >= (int64_t{1} << 31)) throw ArgumentError(n + ": int32 accumulator could overflow");
  }
}

// The fast kernel's inner loop.  target_clones makes one copy per ISA (picked at load time by the
// CPU), each auto-vectorised; every copy computes the same exact integer sum.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) int32_t dot_i8(const int8_t* a, const int8_t* b,
                                                                           int n) {
  int32_t acc = 0;
  for (int i = 0; i < n; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
  return acc;
}

// Its baseline twin (the same loop, no clones), used under the forced-baseline switch.
int32_t dot_i8_baseline(const int8_t* a, const int8_t* b, int n) {
  int32_t acc = 0;
  for (int i = 0; i < n; ++i) acc += int32_t(a[i]) * int32_t(b[i]);
  return acc;
}

}  // namespace

HyperScaleDecoder::HyperScaleDecoder(IntConvLayer conv1, IntConvLayer conv2, IntConvLayer conv3)
    : channels_(conv1.in), layers_{std::move(conv1), std::move(conv2), std::move(conv3)} {
  const int c = channels_;
  if (c < 1 || c > 1024) throw ArgumentError("hyper-scale decoder: channels must be in [1, 1024]");
  check_layer(layers_[0], "conv1", c, c, 1);
  check_layer(layers_[1], "conv2", c, c, 3);
  check_layer(layers_[2], "conv3", c, kShuffle * kShuffle * c, 1);
  for (int l = 0; l < 3; ++l) {
    const IntConvLayer& L = layers_[l];
    const int taps = L.k * L.k;
    packed_[l].resize(L.weight.size());
    for (int o = 0; o < L.out; ++o)
      for (int i = 0; i < L.in; ++i)
        for (int t = 0; t < taps; ++t)
          packed_[l][(size_t(o) * taps + t) * L.in + i] = L.weight[(size_t(o) * L.in + i) * taps + t];
  }
}

void HyperScaleDecoder::forward(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
                                Kernel kernel) const {
  if (hz < 1 || wz < 1 || hl < 1 || wl < 1 || hl > kShuffle * hz || wl > kShuffle * wz)
    throw ArgumentError("hyper-scale decoder: latent size must be in [1, 4 x z size]");
  if (kernel == Kernel::kScalar)
    forward_reference(z, hz, wz, hl, wl, s);
  else
    forward_fast(z, hz, wz, hl, wl, s, threads);
}

// Plain direct convolution on CHW tensors: the reference the fast kernel is tested against.
void HyperScaleDecoder::forward_reference(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s) const {
  const size_t plane = size_t(hz) * wz;
  std::vector<int32_t> x(z, z + size_t(channels_) * plane);
  for (int l = 0; l < 3; ++l) {
    const IntConvLayer& L = layers_[l];
    const int r = L.k / 2;
    std::vector<int32_t> y(size_t(L.out) * plane);
    for (int o = 0; o < L.out; ++o)
      for (int i = 0; i < hz; ++i)
        for (int j = 0; j < wz; ++j) {
          int32_t acc = L.bias[o];
          for (int c = 0; c < L.in; ++c)
            for (int ky = 0; ky < L.k; ++ky)
              for (int kx = 0; kx < L.k; ++kx) {
                const int yy = i + ky - r, xx = j + kx - r;
                if (yy < 0 || yy >= hz || xx < 0 || xx >= wz) continue;
                acc += int32_t(L.weight[((size_t(o) * L.in + c) * L.k + ky) * L.k + kx]) *
                       int32_t(clamp_act(x[size_t(c) * plane + size_t(yy) * wz + xx]));
              }
          int32_t v = acc >> L.shift[o];
          if (l < 2) v = std::max(v, 0);
          y[size_t(o) * plane + size_t(i) * wz + j] = v;
        }
    x.swap(y);
  }
  for (int c = 0; c < channels_; ++c)
    for (int i = 0; i < hl; ++i)
      for (int j = 0; j < wl; ++j) {
        const int ch = kShuffle * kShuffle * c + kShuffle * (i % kShuffle) + (j % kShuffle);
        const int32_t v = x[size_t(ch) * plane + size_t(i / kShuffle) * wz + (j / kShuffle)];
        s[(size_t(c) * hl + i) * wl + j] = std::min(std::abs(v), kMaxLogSigma);
      }
}

// Position-major (HWC) int8 activations; every output is bias + a few int8 dot products.
void HyperScaleDecoder::forward_fast(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s,
                                     unsigned threads) const {
  const int c = channels_;
  const size_t positions = size_t(hz) * wz;
  std::vector<int8_t> act(positions * c);
  for (int ch = 0; ch < c; ++ch)
    for (size_t p = 0; p < positions; ++p) act[p * c + ch] = clamp_act(z[size_t(ch) * positions + p]);

  std::vector<int32_t> last(positions * layers_[2].out);
  int32_t (*const dot)(const int8_t*, const int8_t*, int) = cpu_features().baseline_only ? dot_i8_baseline : dot_i8;
  for (int l = 0; l < 3; ++l) {
    const IntConvLayer& L = layers_[l];
    const int r = L.k / 2, taps = L.k * L.k;
    std::vector<int8_t> next(l < 2 ? positions * L.out : 0);
    // One task per picture row: outputs of different rows are disjoint.
    global_pool().parallel_for(size_t(hz), threads, [&](size_t row) {
      const int i = int(row);
      for (int j = 0; j < wz; ++j) {
        const size_t p = size_t(i) * wz + j;
        for (int o = 0; o < L.out; ++o) {
          int32_t acc = L.bias[o];
          const int8_t* w = &packed_[l][size_t(o) * taps * L.in];
          for (int ky = 0; ky < L.k; ++ky) {
            const int yy = i + ky - r;
            if (yy < 0 || yy >= hz) continue;
            for (int kx = 0; kx < L.k; ++kx) {
              const int xx = j + kx - r;
              if (xx < 0 || xx >= wz) continue;
              acc += dot(w + size_t(ky * L.k + kx) * L.in, &act[(size_t(yy) * wz + xx) * L.in], L.in);
            }
          }
          const int32_t v = acc >> L.shift[o];
          if (l < 2)
            next[p * L.out + o] = clamp_act(std::max(v, 0));
          else
            last[p * L.out + o] = v;
        }
      }
    });
    if (l < 2) act.swap(next);
  }
  const int out_ch = layers_[2].out;
  for (int ch = 0; ch < c; ++ch)
    for (int i = 0; i < hl; ++i)
      for (int j = 0; j < wl; ++j) {
        const int k = kShuffle * kShuffle * ch + kShuffle * (i % kShuffle) + (j % kShuffle);
        const int32_t v = last[(size_t(i / kShuffle) * wz + (j / kShuffle)) * out_ch + k];
        s[(size_t(ch) * hl + i) * wl + j] = std::min(std::abs(v), kMaxLogSigma);
      }
}

}  // namespace jpegai
