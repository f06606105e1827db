#include "hyper_scale_decoder.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "int16_gemm.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

constexpr int kActMin = -128, kActMax = 127;
constexpr int kShuffle = 4;
constexpr int kBlock = gemm16::kBlock;  // outputs per packed weight block (one zmm / two ymm of int32 lanes)

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

// ---------------------------------------------------------------------------------------------------
// Legacy kernel's inner loop (bench-only): target_clones makes one copy per ISA, each auto-vectorised.
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

// ---------------------------------------------------------------------------------------------------
// The fast kernel's GEMM tiles are csrc/int16_gemm.hpp's (MR blocks of 16 outputs x NR consecutive
// positions, flat index q = i * wz + j, over the whole reduction K = taps x cs as K/2 pairs); this job
// is the layer's epilogue.
//
// Exactness: the accumulator starts at the bias and adds products w * x of int8-range integers (x
// in [-128, 127], |w| <= 128), in pairs (pmaddwd: |w0 x0 + w1 x1| <= 2^15, no saturation or wrap
// possible).  Every partial sum is bounded by |bias| + 128 * sum|w| < 2^31 (checked at load), so
// the int32 arithmetic never wraps, whatever the order: each tile gives exactly the reference sums.
struct HsdJob {
  gemm16::Operands op;    // weights [kp][16][2] of the first output block, panel [kp][NR][2], bias
  const int32_t* shift;   // of the first output of the tile (padded to whole blocks)
  bool last;              // conv3: abs/clamp + PixelShuffle into s; else ReLU/clamp into y
  int16_t* y;             // conv1/conv2: output of position p, block m at y + p * ys + 16 m
  int ys;
  int32_t* s;             // conv3: channel ch0 + m (= output block m) of the PixelShuffled output
  int ch0, q0, wz, hl, wl;

  // Where the 16 outputs of block m at position q0 + p go in s: output lane 4 dy + dx -> row 4 i + dy,
  // column 4 j + dx of channel ch0 + m, cropped to `rows` rows (from `base`, `stride` apart) of `cols`.
  struct ShuffleRows {
    int32_t* base;
    size_t stride;
    int rows, cols;
  };
  ShuffleRows shuffle_rows(int p, int m) const {
    const int q = q0 + p, i = q / wz, j = q % wz;
    ShuffleRows r;
    r.cols = std::min(kShuffle, wl - kShuffle * j);
    r.rows = r.cols > 0 ? std::min(kShuffle, hl - kShuffle * i) : 0;
    r.stride = size_t(wl);
    r.base = s + (size_t(ch0 + m) * hl + size_t(kShuffle) * i) * wl + size_t(kShuffle) * j;
    return r;
  }

  // Plain C++ epilogue (the baseline twin).
  void store_lanes(int m, int p, const int32_t* acc) const {
    int32_t v[kBlock];
    for (int l = 0; l < kBlock; ++l) v[l] = acc[l] >> shift[m * kBlock + l];
    if (!last) {
      for (int l = 0; l < kBlock; ++l) y[size_t(p) * ys + m * kBlock + l] = int16_t(std::min(std::max(v[l], 0), kActMax));
    } else {
      const ShuffleRows r = shuffle_rows(p, m);
      for (int dy = 0; dy < r.rows; ++dy)
        for (int dx = 0; dx < r.cols; ++dx) r.base[dy * r.stride + dx] = std::min(std::abs(v[kShuffle * dy + dx]), kMaxLogSigma);
    }
  }

#if JPEGAI_GEMM16_X86
  JPEGAI_TARGET_AVX512 void store_zmm(int m, int p, __m512i acc) const {
    const __m512i v = _mm512_srav_epi32(acc, _mm512_loadu_si512(shift + m * kBlock));
    if (!last) {
      const __m512i r = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(kActMax));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + size_t(p) * ys + m * kBlock), _mm512_cvtepi32_epi16(r));
    } else {
      const __m512i r = _mm512_min_epi32(_mm512_abs_epi32(v), _mm512_set1_epi32(kMaxLogSigma));
      alignas(64) int32_t lanes[kBlock];
      _mm512_store_si512(lanes, r);
      const ShuffleRows rw = shuffle_rows(p, m);
      const __mmask8 mask = __mmask8((1u << std::max(rw.cols, 0)) - 1);
      for (int dy = 0; dy < rw.rows; ++dy)
        _mm_mask_storeu_epi32(rw.base + dy * rw.stride, mask,
                              _mm_load_si128(reinterpret_cast<const __m128i*>(lanes + kShuffle * dy)));
    }
  }

  JPEGAI_TARGET_AVX2 void store_ymm(int p, __m256i acc0, __m256i acc1) const {
    const __m256i v0 = _mm256_srav_epi32(acc0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shift)));
    const __m256i v1 = _mm256_srav_epi32(acc1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shift + 8)));
    if (!last) {
      const __m256i zero = _mm256_setzero_si256(), act_max = _mm256_set1_epi32(kActMax);
      const __m256i r0 = _mm256_min_epi32(_mm256_max_epi32(v0, zero), act_max);
      const __m256i r1 = _mm256_min_epi32(_mm256_max_epi32(v1, zero), act_max);
      // packs works per 128-bit lane: [r0 0-3, r1 0-3 | r0 4-7, r1 4-7] -> qwords 0, 2, 1, 3
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), _MM_SHUFFLE(3, 1, 2, 0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + size_t(p) * ys), packed);
    } else {
      const __m256i sigma_max = _mm256_set1_epi32(kMaxLogSigma);
      alignas(32) int32_t lanes[kBlock];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_min_epi32(_mm256_abs_epi32(v0), sigma_max));
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), _mm256_min_epi32(_mm256_abs_epi32(v1), sigma_max));
      const ShuffleRows rw = shuffle_rows(p, 0);
      for (int dy = 0; dy < rw.rows; ++dy) {
        if (rw.cols == kShuffle)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(rw.base + dy * rw.stride),
                           _mm_load_si128(reinterpret_cast<const __m128i*>(lanes + kShuffle * dy)));
        else
          std::memcpy(rw.base + dy * rw.stride, lanes + kShuffle * dy, sizeof(int32_t) * size_t(rw.cols));
      }
    }
  }
#endif
};

// Positions per band: the im2col panel of one band stays under this many int16 (cache-sized).
constexpr size_t kPanelBudget = size_t(192) << 10;

bool legacy_requested() {
  const char* v = std::getenv("JPEGAI_FAST_HSD_LEGACY");
  return v && v[0] == '1';
}

}  // namespace

HyperScaleDecoder::HyperScaleDecoder(IntConvLayer conv1, IntConvLayer conv2, IntConvLayer conv3)
    : channels_(conv1.in), layers_{std::move(conv1), std::move(conv2), std::move(conv3)} {
  const int c = channels_;
  if (c < 1 || c > 1024) throw ArgumentError("hyper-scale decoder: channels must be in [1, 1024]");
  check_layer(layers_[0], "conv1", c, c, 1);
  check_layer(layers_[1], "conv2", c, c, 3);
  check_layer(layers_[2], "conv3", c, kShuffle * kShuffle * c, 1);
  cs_ = (c + kBlock - 1) / kBlock * kBlock;
  for (int l = 0; l < 3; ++l) {
    const IntConvLayer& L = layers_[l];
    const int taps = L.k * L.k;
    packed_[l].resize(L.weight.size());
    for (int o = 0; o < L.out; ++o)
      for (int i = 0; i < L.in; ++i)
        for (int t = 0; t < taps; ++t)
          packed_[l][(size_t(o) * taps + t) * L.in + i] = L.weight[(size_t(o) * L.in + i) * taps + t];
    // GEMM layout: output o = 16 ob + v, reduction index kk = t * cs_ + i (zero beyond L.in).
    const int blocks = (L.out + kBlock - 1) / kBlock;
    const size_t K = size_t(taps) * cs_;
    gemm_w_[l].assign(size_t(blocks) * K * kBlock, 0);
    gemm_bias_[l].assign(size_t(blocks) * kBlock, 0);
    gemm_shift_[l].assign(size_t(blocks) * kBlock, 0);
    for (int o = 0; o < L.out; ++o) {
      const size_t ob = size_t(o / kBlock), v = size_t(o % kBlock);
      gemm_bias_[l][o] = L.bias[o];
      gemm_shift_[l][o] = L.shift[o];
      for (int i = 0; i < L.in; ++i)
        for (int t = 0; t < taps; ++t) {
          const size_t kk = size_t(t) * cs_ + i;
          gemm_w_[l][(ob * K / 2 + kk / 2) * 2 * kBlock + v * 2 + kk % 2] = L.weight[(size_t(o) * L.in + i) * taps + t];
        }
    }
  }
}

void HyperScaleDecoder::forward(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
                                Kernel kernel) const {
  if (hz < 1 || wz < 1 || hl < 1 || wl < 1 || hl > kShuffle * hz || wl > kShuffle * wz)
    throw ArgumentError("hyper-scale decoder: latent size must be in [1, 4 x z size]");
  if (kernel == Kernel::kScalar)
    forward_reference(z, hz, wz, hl, wl, s);
  else if (legacy_requested())
    forward_legacy(z, hz, wz, hl, wl, s, threads);
  else
    forward_fast(z, hz, wz, hl, wl, s, threads, kernel);
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


// im2col + register-tiled GEMM per layer.  Activations are HWC int16 with a channel stride of cs_
// (padding channels 0).  Per band of positions: the im2col panel is built once (one task per tile of
// positions), then each (output tile, position tile) pair is one task; outputs of tasks are disjoint
// (an activation slice of the next buffer, or whole rows of 4 samples in the PixelShuffled s).
void HyperScaleDecoder::forward_fast(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s, unsigned threads,
                                     Kernel kernel) const {
  const gemm16::TileSet<HsdJob>& ts = gemm16::tile_set<HsdJob>(kernel);
  const int c = channels_, cs = cs_, nr = ts.nr;
  const size_t positions = size_t(hz) * wz;
  std::vector<int16_t> act(positions * cs, 0), next(positions * cs, 0), zeros(cs, 0);
  for (int ch = 0; ch < c; ++ch)
    for (size_t q = 0; q < positions; ++q) act[q * cs + ch] = clamp_act(z[size_t(ch) * positions + q]);

  std::unique_ptr<int16_t[]> panel;
  size_t panel_size = 0;
  for (int l = 0; l < 3; ++l) {
    const IntConvLayer& L = layers_[l];
    const size_t K = size_t(L.k) * L.k * cs;
    int dy[9], dx[9];  // tap offsets, row-major over the k x k kernel
    for (int t = 0; t < L.k * L.k; ++t) dy[t] = t / L.k - L.k / 2, dx[t] = t % L.k - L.k / 2;
    const int blocks = (L.out + kBlock - 1) / kBlock;
    const size_t mtiles = size_t(blocks + ts.mr_max - 1) / ts.mr_max;
    const size_t band = std::min(std::max<size_t>(1, kPanelBudget / K / nr) * nr, (positions + nr - 1) / nr * nr);
    if (band * K > panel_size) {
      panel.reset(new int16_t[band * K]);
      panel_size = band * K;
    }
    for (size_t b0 = 0; b0 < positions; b0 += band) {
      const size_t b1 = std::min(positions, b0 + band), ptiles = (b1 - b0 + nr - 1) / nr;
      global_pool().parallel_for(ptiles, threads, [&](size_t pt) {
        const size_t q0 = b0 + pt * nr;
        gemm16::pack_panel(act.data(), hz, wz, cs, 0, cs, zeros.data(), dy, dx, L.k * L.k, wz, int(q0),
                           int(std::min<size_t>(nr, b1 - q0)), panel.get() + pt * nr * K);
      });
      global_pool().parallel_for(mtiles * ptiles, threads, [&](size_t task) {
        const size_t pt = task % ptiles, q0 = b0 + pt * nr;
        const int ob0 = int(task / ptiles) * ts.mr_max, mr = std::min(ts.mr_max, blocks - ob0);
        const int n = int(std::min<size_t>(nr, b1 - q0));
        HsdJob t;
        const int16_t* x[gemm16::kMaxNR];  // the panel [K/2][n][2] of the n positions
        for (int p = 0; p < n; ++p) x[p] = panel.get() + pt * nr * K + 2 * p;
        t.op.w = gemm_w_[l].data() + size_t(ob0) * K * kBlock;
        t.op.w_block = K * kBlock;
        t.op.x = x;
        t.op.x_offset = 0;
        t.op.taps = 1;
        t.op.pairs = int(K / 2);
        t.op.step = 2 * n;
        t.op.bias = gemm_bias_[l].data() + size_t(ob0) * kBlock;
        t.shift = gemm_shift_[l].data() + size_t(ob0) * kBlock;
        t.last = l == 2;
        t.y = l < 2 ? next.data() + q0 * cs + size_t(ob0) * kBlock : nullptr;
        t.ys = cs;
        t.s = s;
        t.ch0 = ob0;
        t.q0 = int(q0);
        t.wz = wz;
        t.hl = hl;
        t.wl = wl;
        ts.fn[mr - 1][n - 1](t);
      });
    }
    if (l < 2) act.swap(next);
  }
}

// The previous fast kernel (bench-only, JPEGAI_FAST_HSD_LEGACY=1): position-major (HWC) int8
// activations; every output is bias + a few int8 dot products.
void HyperScaleDecoder::forward_legacy(const int16_t* z, int hz, int wz, int hl, int wl, int32_t* s,
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
