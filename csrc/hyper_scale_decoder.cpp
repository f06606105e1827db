#include "hyper_scale_decoder.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "thread_pool.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define JPEGAI_HSD_X86 1
#include <immintrin.h>
#else
#define JPEGAI_HSD_X86 0
#endif

namespace jpegai {
namespace {

constexpr int kActMin = -128, kActMax = 127;
constexpr int kShuffle = 4;
constexpr int kBlock = 16;  // outputs per packed weight block (one zmm / two ymm of int32 lanes)

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
// The GEMM tile of the fast kernel: MR blocks of 16 outputs x NR consecutive positions (flat index
// q = i * wz + j), over the whole reduction K (= taps x cs, as K/2 pairs), then the layer's epilogue.
//
// Exactness: the accumulator starts at the bias and adds products w * x of int8-range integers (x
// in [-128, 127], |w| <= 128), in pairs (pmaddwd: |w0 x0 + w1 x1| <= 2^15, no saturation or wrap
// possible).  Every partial sum is bounded by |bias| + 128 * sum|w| < 2^31 (checked at load), so
// the int32 arithmetic never wraps, whatever the order: each tile gives exactly the reference sums.
struct Tile {
  const int16_t* w;       // packed weights of the first output block: [kp][16][2] int16
  size_t w_block;         // int16 elements from one 16-output block to the next (= K * 16)
  const int16_t* x;       // im2col panel of the NR positions: [kp][NR][2] int16
  int kp;                 // K / 2
  const int32_t* bias;    // of the first output of the tile (padded to whole blocks)
  const int32_t* shift;
  bool last;              // conv3: abs/clamp + PixelShuffle into s; else ReLU/clamp into y
  int16_t* y;             // conv1/conv2: output of position p, block m at y + p * ys + 16 m
  int ys;
  int32_t* s;             // conv3: channel ch0 + m (= output block m) of the PixelShuffled output
  int ch0, q0, wz, hl, wl;
};

// Where the 16 outputs of block m at position q0 + p go in s: output lane 4 dy + dx -> row 4 i + dy,
// column 4 j + dx of channel ch0 + m, cropped to `rows` rows (from `base`, `stride` apart) of `cols`.
struct ShuffleRows {
  int32_t* base;
  size_t stride;
  int rows, cols;
};

inline ShuffleRows shuffle_rows(const Tile& t, int p, int m) {
  const int q = t.q0 + p, i = q / t.wz, j = q % t.wz;
  ShuffleRows r;
  r.cols = std::min(kShuffle, t.wl - kShuffle * j);
  r.rows = r.cols > 0 ? std::min(kShuffle, t.hl - kShuffle * i) : 0;
  r.stride = size_t(t.wl);
  r.base = t.s + (size_t(t.ch0 + m) * t.hl + size_t(kShuffle) * i) * t.wl + size_t(kShuffle) * j;
  return r;
}

// Plain C++ tile: the baseline twin (also what non-x86 builds run).
template <int MR, int NR>
void tile_generic(const Tile& t) {
  int32_t acc[NR][MR * kBlock];
  for (int p = 0; p < NR; ++p)
    for (int v = 0; v < MR * kBlock; ++v) acc[p][v] = t.bias[v];
  for (int k = 0; k < t.kp; ++k) {
    const int16_t* xk = t.x + size_t(k) * NR * 2;
    for (int m = 0; m < MR; ++m) {
      const int16_t* wk = t.w + m * t.w_block + size_t(k) * 2 * kBlock;
      // The pair's two weights per output, each contiguous; int16 x int16 -> int32 products are
      // what baseline SIMD (SSE2 pmullw/pmulhw, NEON smull) widens without a 32-bit multiply.
      int16_t w0[kBlock], w1[kBlock];
      for (int v = 0; v < kBlock; ++v) w0[v] = wk[2 * v], w1[v] = wk[2 * v + 1];
      for (int p = 0; p < NR; ++p) {
        const int16_t x0 = xk[2 * p], x1 = xk[2 * p + 1];
        for (int v = 0; v < kBlock; ++v)
          acc[p][m * kBlock + v] += int32_t(w0[v]) * int32_t(x0) + int32_t(w1[v]) * int32_t(x1);
      }
    }
  }
  for (int p = 0; p < NR; ++p)
    for (int m = 0; m < MR; ++m) {
      int32_t v[kBlock];
      for (int l = 0; l < kBlock; ++l) v[l] = acc[p][m * kBlock + l] >> t.shift[m * kBlock + l];
      if (!t.last) {
        for (int l = 0; l < kBlock; ++l)
          t.y[size_t(p) * t.ys + m * kBlock + l] = int16_t(std::min(std::max(v[l], 0), kActMax));
      } else {
        const ShuffleRows r = shuffle_rows(t, p, m);
        for (int dy = 0; dy < r.rows; ++dy)
          for (int dx = 0; dx < r.cols; ++dx)
            r.base[dy * r.stride + dx] = std::min(std::abs(v[kShuffle * dy + dx]), kMaxLogSigma);
      }
    }
}

#if JPEGAI_HSD_X86
inline int32_t load_pair(const int16_t* x) {
  int32_t v;
  std::memcpy(&v, x, sizeof v);
  return v;
}

// AVX-512BW tile: one zmm = 16 outputs of one position; MR x NR accumulators (<= 24 of 32 registers).
template <int MR, int NR>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void tile_avx512(const Tile& t) {
  __m512i acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m512i b = _mm512_loadu_si512(t.bias + m * kBlock);
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) acc[m][p] = b;
  }
  const int16_t* w = t.w;
  const int16_t* x = t.x;
  for (int k = 0; k < t.kp; ++k, w += 2 * kBlock, x += 2 * NR) {
    __m512i wv[MR];
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) wv[m] = _mm512_loadu_si512(w + m * t.w_block);
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) {
      const __m512i xb = _mm512_set1_epi32(load_pair(x + 2 * p));
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[m][p] = _mm512_add_epi32(acc[m][p], _mm512_madd_epi16(wv[m], xb));
    }
  }
  const __m512i zero = _mm512_setzero_si512();
  const __m512i act_max = _mm512_set1_epi32(kActMax), sigma_max = _mm512_set1_epi32(kMaxLogSigma);
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m512i sh = _mm512_loadu_si512(t.shift + m * kBlock);
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) {
      const __m512i v = _mm512_srav_epi32(acc[m][p], sh);
      if (!t.last) {
        const __m512i r = _mm512_min_epi32(_mm512_max_epi32(v, zero), act_max);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.y + size_t(p) * t.ys + m * kBlock), _mm512_cvtepi32_epi16(r));
      } else {
        const __m512i r = _mm512_min_epi32(_mm512_abs_epi32(v), sigma_max);
        alignas(64) int32_t lanes[kBlock];
        _mm512_store_si512(lanes, r);
        const ShuffleRows rw = shuffle_rows(t, p, m);
        const __mmask8 mask = __mmask8((1u << std::max(rw.cols, 0)) - 1);
        for (int dy = 0; dy < rw.rows; ++dy)
          _mm_mask_storeu_epi32(rw.base + dy * rw.stride, mask,
                                _mm_load_si128(reinterpret_cast<const __m128i*>(lanes + kShuffle * dy)));
      }
    }
  }
}

// AVX2 tile: two ymm = 16 outputs of one position; 2 x NR accumulators (12 of the 16 registers).
template <int MR, int NR>
__attribute__((target("avx2"))) void tile_avx2(const Tile& t) {
  static_assert(MR == 1, "AVX2 tiles are one 16-output block wide");
  __m256i acc[2][NR];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias + 8));
#pragma GCC unroll 16
  for (int p = 0; p < NR; ++p) acc[0][p] = b0, acc[1][p] = b1;
  const int16_t* w = t.w;
  const int16_t* x = t.x;
  for (int k = 0; k < t.kp; ++k, w += 2 * kBlock, x += 2 * NR) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + kBlock));
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) {
      const __m256i xb = _mm256_set1_epi32(load_pair(x + 2 * p));
      acc[0][p] = _mm256_add_epi32(acc[0][p], _mm256_madd_epi16(w0, xb));
      acc[1][p] = _mm256_add_epi32(acc[1][p], _mm256_madd_epi16(w1, xb));
    }
  }
  const __m256i sh0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.shift));
  const __m256i sh1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.shift + 8));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i act_max = _mm256_set1_epi32(kActMax), sigma_max = _mm256_set1_epi32(kMaxLogSigma);
#pragma GCC unroll 16
  for (int p = 0; p < NR; ++p) {
    const __m256i v0 = _mm256_srav_epi32(acc[0][p], sh0), v1 = _mm256_srav_epi32(acc[1][p], sh1);
    if (!t.last) {
      const __m256i r0 = _mm256_min_epi32(_mm256_max_epi32(v0, zero), act_max);
      const __m256i r1 = _mm256_min_epi32(_mm256_max_epi32(v1, zero), act_max);
      // packs works per 128-bit lane: [r0 0-3, r1 0-3 | r0 4-7, r1 4-7] -> qwords 0, 2, 1, 3
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), _MM_SHUFFLE(3, 1, 2, 0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.y + size_t(p) * t.ys), packed);
    } else {
      alignas(32) int32_t lanes[kBlock];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_min_epi32(_mm256_abs_epi32(v0), sigma_max));
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), _mm256_min_epi32(_mm256_abs_epi32(v1), sigma_max));
      const ShuffleRows rw = shuffle_rows(t, p, 0);
      for (int dy = 0; dy < rw.rows; ++dy) {
        if (rw.cols == kShuffle)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(rw.base + dy * rw.stride),
                           _mm_load_si128(reinterpret_cast<const __m128i*>(lanes + kShuffle * dy)));
        else
          std::memcpy(rw.base + dy * rw.stride, lanes + kShuffle * dy, sizeof(int32_t) * size_t(rw.cols));
      }
    }
  }
}
#endif

using TileFn = void (*)(const Tile&);
constexpr int kMaxMR = 2, kMaxNR = 12;

// One instruction set's tiles: fn[mr - 1][n - 1] for mr <= mr_max blocks, n <= nr positions.
struct TileSet {
  int mr_max, nr;
  TileFn fn[kMaxMR][kMaxNR];
};

template <template <int, int> class F, int MR, int... N>
constexpr void fill_row(TileFn (&row)[kMaxNR], std::integer_sequence<int, N...>) {
  ((row[N] = &F<MR, N + 1>::run), ...);
}

template <int MR, int NR>
struct GenericTile {
  static void run(const Tile& t) { tile_generic<MR, NR>(t); }
};
#if JPEGAI_HSD_X86
template <int MR, int NR>
struct Avx512Tile {
  static void run(const Tile& t) { tile_avx512<MR, NR>(t); }
};
template <int MR, int NR>
struct Avx2Tile {
  static void run(const Tile& t) { tile_avx2<MR, NR>(t); }
};
#endif

// The plain C++ tiles: 16 outputs x 4 positions (64 int32 accumulators the compiler can vectorise).
TileSet make_generic() {
  TileSet s{1, 4, {}};
  fill_row<GenericTile, 1>(s.fn[0], std::make_integer_sequence<int, 4>{});
  return s;
}
#if JPEGAI_HSD_X86
// AVX-512: 32 outputs x 12 positions (a Kodak z row in one tile), 16-output tiles for an odd block.
TileSet make_avx512() {
  TileSet s{2, 12, {}};
  fill_row<Avx512Tile, 1>(s.fn[0], std::make_integer_sequence<int, 12>{});
  fill_row<Avx512Tile, 2>(s.fn[1], std::make_integer_sequence<int, 12>{});
  return s;
}
// AVX2: 16 outputs x 6 positions.
TileSet make_avx2() {
  TileSet s{1, 6, {}};
  fill_row<Avx2Tile, 1>(s.fn[0], std::make_integer_sequence<int, 6>{});
  return s;
}
#endif

// The tiles for this call: the forced-baseline switch and the JPEGAI_FAST_SIMD cap are in
// cpu_features(); Kernel::kAvx2 caps at AVX2.
const TileSet& tile_set(Kernel kernel) {
  static const TileSet generic = make_generic();
#if JPEGAI_HSD_X86
  static const TileSet avx512 = make_avx512(), avx2 = make_avx2();
  const CpuFeatures& f = cpu_features();
  if (f.baseline_only) return generic;
  if (f.avx512 && kernel != Kernel::kAvx2) return avx512;
  if (f.avx2) return avx2;
#else
  (void)kernel;
#endif
  return generic;
}

// im2col panel of positions q0 .. q0 + n - 1 (n <= kMaxNR) of an HWC int16 activation (stride cs;
// `zeros` is cs zeros, read for taps outside the picture): panel[kp][p][2] with kp = tap * cs / 2 +
// c / 2 (tap-major, then pairs of channels), so a tile reads its NR positions' pairs contiguously.
void pack_panel(const int16_t* act, const int16_t* zeros, int hz, int wz, int cs, int k, int q0, int n,
                int16_t* panel) {
  const int r = k / 2, half = cs / 2;
  const int16_t* src[kMaxNR];
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx) {
      for (int p = 0; p < n; ++p) {
        const int q = q0 + p, yy = q / wz + ky - r, xx = q % wz + kx - r;
        src[p] = (yy < 0 || yy >= hz || xx < 0 || xx >= wz) ? zeros : act + (size_t(yy) * wz + xx) * cs;
      }
      int16_t* dst = panel + size_t(ky * k + kx) * half * n * 2;
      for (int c = 0; c < half; ++c, dst += 2 * n)
        for (int p = 0; p < n; ++p) std::memcpy(dst + 2 * p, src[p] + 2 * c, 2 * sizeof(int16_t));
    }
}

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
  const TileSet& ts = tile_set(kernel);
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
        pack_panel(act.data(), zeros.data(), hz, wz, cs, L.k, int(q0), int(std::min<size_t>(nr, b1 - q0)),
                   panel.get() + pt * nr * K);
      });
      global_pool().parallel_for(mtiles * ptiles, threads, [&](size_t task) {
        const size_t pt = task % ptiles, q0 = b0 + pt * nr;
        const int ob0 = int(task / ptiles) * ts.mr_max, mr = std::min(ts.mr_max, blocks - ob0);
        const int n = int(std::min<size_t>(nr, b1 - q0));
        Tile t;
        t.w = gemm_w_[l].data() + size_t(ob0) * K * kBlock;
        t.w_block = K * kBlock;
        t.x = panel.get() + pt * nr * K;
        t.kp = int(K / 2);
        t.bias = gemm_bias_[l].data() + size_t(ob0) * kBlock;
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
