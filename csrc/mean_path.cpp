#include "mean_path.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "cpu_features.hpp"
#include "errors.hpp"
#include "int16_gemm.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

constexpr int kSkip = 255;
constexpr int kMaxFrac = 15;               // int16 with at most 15 fraction bits
constexpr int64_t kAccLimit = int64_t{1} << 31;
// Luma context stages: phase (row, col) of stage s in the 2x2 cell; stage_of[2*dy+dx] the inverse.
constexpr int kStageDy[4] = {0, 1, 0, 1}, kStageDx[4] = {0, 1, 1, 0};
constexpr int kStageOfPhase[4] = {0, 2, 3, 1};
// Transposed conv k4 s2 p1: output row Y takes kernel rows ky with Y + 1 - ky even, from input row
// (Y + 1 - ky) / 2.  Per output parity the two taps, listed with their input offset from Y >> 1.
constexpr int kTapK[2][2] = {{1, 3}, {0, 2}};
constexpr int kTapOff[2][2] = {{0, -1}, {1, 0}};

int16_t sat16(int64_t v) { return int16_t(std::min<int64_t>(std::max<int64_t>(v, -32768), 32767)); }

int64_t round_shift(int64_t v, int s) { return s > 0 ? (v + (int64_t{1} << (s - 1))) >> s : v; }

int16_t activate(int64_t v, MeanActivation act, int frac_out) {
  int16_t x = sat16(v);
  if (act == MeanActivation::kNone) return x;
  if (act == MeanActivation::kLeakyRelu) return x < 0 ? int16_t((int32_t(x) * 41 + 2048) >> 12) : x;
  if (x < 0) return 0;
  if (act == MeanActivation::kRelu6) x = int16_t(std::min<int32_t>(x, std::min<int32_t>(6 << frac_out, 32767)));
  return x;
}

// ---------------------------------------------------------------------------------------------------
// The legacy kernel (bench-only, JPEGAI_FAST_MEAN_LEGACY=1): im2col per output row, then four output
// pixels against one weight row.  One clone per ISA (picked at load time), each auto-vectorised; every
// clone computes the same exact integer sums.
inline __attribute__((always_inline)) void gemm_rows_body(const int16_t* col, int pixels, int K, size_t col_stride,
                                                          const int16_t* weight, int outs, int32_t* acc,
                                                          size_t acc_stride) {
  for (int o = 0; o < outs; ++o) {
    const int16_t* w = weight + size_t(o) * K;
    int p = 0;
    for (; p + 4 <= pixels; p += 4) {
      const int16_t *a0 = col + size_t(p) * col_stride, *a1 = a0 + col_stride, *a2 = a1 + col_stride,
                    *a3 = a2 + col_stride;
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int k = 0; k < K; ++k) {
        const int32_t wk = w[k];
        s0 += int32_t(a0[k]) * wk;
        s1 += int32_t(a1[k]) * wk;
        s2 += int32_t(a2[k]) * wk;
        s3 += int32_t(a3[k]) * wk;
      }
      acc[size_t(p) * acc_stride + o] = s0;
      acc[size_t(p + 1) * acc_stride + o] = s1;
      acc[size_t(p + 2) * acc_stride + o] = s2;
      acc[size_t(p + 3) * acc_stride + o] = s3;
    }
    for (; p < pixels; ++p) {
      const int16_t* a = col + size_t(p) * col_stride;
      int32_t s = 0;
      for (int k = 0; k < K; ++k) s += int32_t(a[k]) * int32_t(w[k]);
      acc[size_t(p) * acc_stride + o] = s;
    }
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void gemm_rows(
    const int16_t* col, int pixels, int K, size_t col_stride, const int16_t* weight, int outs, int32_t* acc,
    size_t acc_stride) {
  gemm_rows_body(col, pixels, K, col_stride, weight, outs, acc, acc_stride);
}

// The same loops without clones: the baseline twin run under the forced-baseline switch
// (JPEGAI_FAST_SIMD=scalar), so tests compare every clone with it on one machine.
void gemm_rows_baseline(const int16_t* col, int pixels, int K, size_t col_stride, const int16_t* weight, int outs,
                        int32_t* acc, size_t acc_stride) {
  gemm_rows_body(col, pixels, K, col_stride, weight, outs, acc, acc_stride);
}

using GemmRows = void (*)(const int16_t*, int, int, size_t, const int16_t*, int, int32_t*, size_t);

GemmRows gemm_kernel() { return cpu_features().baseline_only ? gemm_rows_baseline : gemm_rows; }

bool legacy_requested() {
  const char* v = std::getenv("JPEGAI_FAST_MEAN_LEGACY");
  return v && v[0] == '1';
}

// ---------------------------------------------------------------------------------------------------
// The fast kernel: csrc/int16_gemm.hpp's register-tiled tiles (run_layer_fast feeds them); this job is the
// epilogue of one tile (MR blocks of 16 outputs of one group x NR positions): acc = bias + sum w x (int32, exact:
// int8 weights, |bias| + 32768 sum|w| < 2^31 checked at load), then per output the rounding right shift,
// saturation to int16, the activation, and the store into the HWC output.
//
// The scalar epilogue (store_lanes) is the definition: activate(round_shift(acc, s)) in int64.  The SIMD
// ones compute the same in int32 without the overflow that acc + 2^(s-1) could reach near 2^31:
//   t = acc >> max(s - 1, 0);  r = (t >> b) + (t & b),  b = (s > 0)
// (floor((acc + 2^(s-1)) / 2^s) = floor((floor(acc / 2^(s-1)) + 1) / 2) = (t >> 1) + (t & 1)); then
// saturation and ReLU / ReLU6 are one clamp to [lo, hi], and LeakyReLU of the saturated x is
// max(x, (41 x + 2048) >> 12) (for x < 0 the second is the larger, for x >= 0 it is at most x).
constexpr int kBlock = gemm16::kBlock;

struct MeanJob {
  gemm16::Operands op;
  int16_t* dst[gemm16::kMaxNR];  // position p: where the tile's first output goes (then block m at + 16 m)
  int valid;                     // real outputs from the tile's first on (the rest: the last block's padding)
  const int32_t* shift;          // per output from the tile's first (padded like the bias)
  const int32_t* shift_a;        // max(shift - 1, 0)
  const int32_t* shift_b;        // shift > 0
  MeanActivation act;
  int frac_out;
  int32_t lo, hi;                // saturation and ReLU / ReLU6 as one clamp
  bool leaky;

  int lanes(int m) const { return std::min(std::max(valid - m * kBlock, 0), kBlock); }

  void store_lanes(int m, int p, const int32_t* acc) const {
    int16_t* d = dst[p] + m * kBlock;
    const int n = lanes(m);
    for (int l = 0; l < n; ++l) d[l] = activate(round_shift(acc[l], shift[m * kBlock + l]), act, frac_out);
  }

#if JPEGAI_GEMM16_X86
  JPEGAI_TARGET_AVX512 void store_zmm(int m, int p, __m512i acc) const {
    const __m512i t = _mm512_srav_epi32(acc, _mm512_loadu_si512(shift_a + m * kBlock));
    const __m512i b = _mm512_loadu_si512(shift_b + m * kBlock);
    __m512i r = _mm512_add_epi32(_mm512_srav_epi32(t, b), _mm512_and_si512(t, b));
    r = _mm512_min_epi32(_mm512_max_epi32(r, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
    if (leaky)
      r = _mm512_max_epi32(r, _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(r, _mm512_set1_epi32(41)),
                                                                 _mm512_set1_epi32(2048)), 12));
    const __m256i h = _mm512_cvtepi32_epi16(r);  // in int16 range after the clamp: truncation is exact
    int16_t* d = dst[p] + m * kBlock;
    const int n = lanes(m);
    if (n == kBlock)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), h);
    else
      _mm256_mask_storeu_epi16(d, __mmask16((1u << n) - 1), h);
  }

  JPEGAI_TARGET_AVX2 __m256i finish_ymm(__m256i acc, int at) const {
    const __m256i t = _mm256_srav_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shift_a + at)));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shift_b + at));
    __m256i r = _mm256_add_epi32(_mm256_srav_epi32(t, b), _mm256_and_si256(t, b));
    r = _mm256_min_epi32(_mm256_max_epi32(r, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
    if (leaky)
      r = _mm256_max_epi32(r, _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(41)),
                                                                 _mm256_set1_epi32(2048)), 12));
    return r;
  }

  JPEGAI_TARGET_AVX2 void store_ymm(int p, __m256i acc0, __m256i acc1) const {
    const __m256i r0 = finish_ymm(acc0, 0), r1 = finish_ymm(acc1, 8);
    // packs works per 128-bit lane: [r0 0-3, r1 0-3 | r0 4-7, r1 4-7] -> qwords 0, 2, 1, 3
    const __m256i h = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), _MM_SHUFFLE(3, 1, 2, 0));
    const int n = lanes(0);
    if (n == kBlock) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[p]), h);
    } else {
      alignas(32) int16_t tmp[kBlock];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), h);
      std::memcpy(dst[p], tmp, sizeof(int16_t) * size_t(n));
    }
  }
#endif
};

// An HWC int16 input: h x w positions, `stride` int16 from one position to the next (the layer reads its
// first `in` channels: a context stage reads the first s C channels of the decoded phases in place).
struct View16 {
  const int16_t* v;
  int h, w, stride;
};

// int16 of the im2col panels of one band of positions (all groups): about L2-sized.  Only layers whose
// group width is odd use panels (see run_layer_fast).
constexpr size_t kPanelBudget = size_t(192) << 10;

// y = layer(x) by the fast kernel.  A transposed conv is four convs with 2 x 2 taps on the input grid,
// one per output parity (py, px) ("phase"): output (2i + py, 2j + px) reads input (i + kTapOff[py][a],
// j + kTapOff[px][b]).  A tile reads its positions' channel pairs straight from the HWC input through a
// table of pointers per (position tile, tap, position) -- the input position's first channel, or a zero
// row for a tap outside the input -- built once per phase and shared by every group (the group's channel
// offset is added in the tile) and output tile; there is no im2col copy.  Except for an odd group width,
// whose last pair would read one channel past the group: those layers (none in the shipped models) pack
// zero-padded panels first, a band of positions at a time.  Tasks are (group, output tile, chunk of
// position tiles), output tile outermost so that its weights stay in cache while the positions stream
// past.  Tasks write disjoint outputs; a tile's arithmetic does not depend on the thread that runs it.
void run_layer_fast(const MeanLayer& L, const View16& x, Tensor16& y, unsigned threads, Kernel kernel) {
  const gemm16::TileSet<MeanJob>& ts = gemm16::tile_set<MeanJob>(kernel);
  const bool transposed = L.kind == MeanLayerKind::kConvTranspose4x4s2;
  const int G = L.groups, in_g = L.in / G, out_g = L.out / G, blocks = L.gemm_blocks, nr = ts.nr;
  const int taps = transposed ? 4 : L.k * L.k, r = L.k / 2;
  const bool direct = in_g % 2 == 0;
  const size_t K = size_t(2) * L.gemm_kp, w_block = K * kBlock;
  const size_t mtiles = size_t(blocks + ts.mr_max - 1) / ts.mr_max, units = size_t(G) * mtiles;
  const size_t workers = threads ? threads : hardware_threads();
  const std::vector<int16_t> zeros(size_t(L.in) + 1, 0);  // a zero row for every group's channel offset
  MeanJob proto{};
  proto.act = L.act;
  proto.frac_out = L.frac_out;
  const bool relu = L.act == MeanActivation::kRelu || L.act == MeanActivation::kRelu6;
  proto.lo = relu ? 0 : -32768;
  proto.hi = L.act == MeanActivation::kRelu6 ? std::min(6 << L.frac_out, 32767) : 32767;
  proto.leaky = L.act == MeanActivation::kLeakyRelu;
  proto.op.w_block = w_block;
  proto.op.taps = direct ? taps : 1;
  proto.op.pairs = direct ? in_g / 2 : L.gemm_kp;
  std::vector<int16_t> panel;
  std::vector<const int16_t*> xs;  // [position tile][tap][n]: direct reads (group 0), or panel positions
  std::vector<int16_t*> dst;       // position q: its output's channel 0
  for (int ph = 0; ph < (transposed ? 4 : 1); ++ph) {
    const int py = ph >> 1, px = ph & 1;
    const int gh = transposed ? (y.h - py + 1) / 2 : y.h, gw = transposed ? (y.w - px + 1) / 2 : y.w;
    const size_t positions = size_t(std::max(gh, 0)) * size_t(std::max(gw, 0));
    if (positions == 0) continue;
    int dy[9], dx[9];
    for (int t = 0; t < taps; ++t) {
      dy[t] = transposed ? kTapOff[py][t >> 1] : t / L.k - r;
      dx[t] = transposed ? kTapOff[px][t & 1] : t % L.k - r;
    }
    const size_t all_tiles = (positions + nr - 1) / nr;
    dst.resize(positions);
    xs.resize(all_tiles * nr * (direct ? taps : G));
    for (size_t q = 0; q < positions; ++q) {
      const size_t i = q / gw, j = q % gw;
      const size_t Y = transposed ? 2 * i + py : i, X = transposed ? 2 * j + px : j;
      dst[q] = y.v.data() + (Y * y.w + X) * L.out;
      if (!direct) continue;
      const size_t pt = q / nr, p = q % nr, n = std::min<size_t>(nr, positions - pt * nr);
      for (int t = 0; t < taps; ++t) {
        const int iy = int(i) + dy[t], ix = int(j) + dx[t];
        xs[pt * taps * nr + t * n + p] =  // [pt][t][n]: rows of n entries (n < nr: the tail tile)
            iy < 0 || iy >= x.h || ix < 0 || ix >= x.w ? zeros.data() : x.v + (size_t(iy) * x.w + ix) * x.stride;
      }
    }
    // Direct: one band of all positions.  Panels: bands whose panels fit kPanelBudget.
    const size_t band = direct ? all_tiles * nr
                               : std::min(std::max<size_t>(1, kPanelBudget / (K * G) / nr), all_tiles) * nr;
    if (!direct && panel.size() < band * K * G) panel.resize(band * K * G);
    for (size_t b0 = 0; b0 < positions; b0 += band) {
      const size_t b1 = std::min(positions, b0 + band), ptiles = (b1 - b0 + nr - 1) / nr;
      if (!direct)
        global_pool().parallel_for(size_t(G) * ptiles, threads, [&](size_t task) {
          const size_t g = task / ptiles, pt = task % ptiles, q0 = b0 + pt * nr;
          const int n = int(std::min<size_t>(nr, b1 - q0));
          int16_t* pan = panel.data() + (g * ptiles + pt) * nr * K;
          gemm16::pack_panel(x.v, x.h, x.w, x.stride, int(g) * in_g, in_g, zeros.data(), dy, dx, taps, gw, int(q0), n,
                             pan);
          for (int p = 0; p < n; ++p) xs[(g * ptiles + pt) * nr + p] = pan + 2 * p;
        });
      // enough tasks to balance the threads, few enough that a task is many tiles
      const size_t chunks = std::min(ptiles, std::max<size_t>(1, (4 * workers + units - 1) / units));
      const size_t per = (ptiles + chunks - 1) / chunks;
      global_pool().parallel_for(units * chunks, threads, [&](size_t task) {
        const size_t unit = task / chunks, chunk = task % chunks;
        const int g = int(unit / mtiles), ob0 = int(unit % mtiles) * ts.mr_max;
        const int mr = std::min(ts.mr_max, blocks - ob0);
        const size_t out0 = size_t(g) * blocks * kBlock + size_t(ob0) * kBlock;  // padded output index
        const size_t channel0 = size_t(g) * out_g + size_t(ob0) * kBlock;
        MeanJob job = proto;
        job.op.w = L.gemm_w.data() + ((size_t(ph) * G + g) * blocks + ob0) * w_block;
        job.op.x_offset = direct ? ptrdiff_t(g) * in_g : 0;
        job.op.bias = L.gemm_bias.data() + out0;
        job.shift = L.gemm_shift.data() + out0;
        job.shift_a = L.gemm_shift_a.data() + out0;
        job.shift_b = L.gemm_shift_b.data() + out0;
        job.valid = out_g - ob0 * kBlock;
        for (size_t pt = chunk * per; pt < std::min(ptiles, (chunk + 1) * per); ++pt) {
          const size_t q0 = b0 + pt * nr;
          const int n = int(std::min<size_t>(nr, b1 - q0));
          job.op.x = direct ? xs.data() + (q0 / nr) * taps * nr : xs.data() + (size_t(g) * ptiles + pt) * nr;
          job.op.step = direct ? 2 : 2 * n;
          for (int p = 0; p < n; ++p) job.dst[p] = dst[q0 + p] + channel0;
          ts.fn[mr - 1][n - 1](job);
        }
      });
    }
  }
}

std::vector<uint32_t> u32(std::initializer_list<int> dims) {
  std::vector<uint32_t> v;
  for (int d : dims) v.push_back(uint32_t(d));
  return v;
}

}  // namespace

MeanLayer load_mean_layer(const ModelBlob& blob, const std::string& prefix, int in, int out) {
  const std::vector<int32_t> meta = blob.int32(prefix + ".meta", {6});
  if (out < 0) {
    const BlobSection& w = blob.section(prefix + ".weight");
    if (w.shape.size() != 4 || w.shape[0] < 1 || w.shape[0] > 4096)
      throw ArgumentError("model: " + prefix + ".weight: bad shape");
    out = int(w.shape[0]);
  }
  MeanLayer L;
  L.kind = MeanLayerKind(meta[0]);
  L.k = meta[1];
  L.groups = meta[2];
  L.frac_in = meta[3];
  L.frac_out = meta[4];
  L.act = MeanActivation(meta[5]);
  L.in = in;
  L.out = out;
  const std::string n = "model: " + prefix;
  if (meta[0] < 0 || meta[0] > 1 || meta[5] < 0 || meta[5] > 3) throw ArgumentError(n + ": unknown kind/activation");
  if (L.kind == MeanLayerKind::kConvTranspose4x4s2 ? (L.k != 4 || L.groups != 1) : (L.k != 1 && L.k != 3))
    throw ArgumentError(n + ": unsupported kernel size");
  if (L.groups < 1 || in % L.groups || out % L.groups) throw ArgumentError(n + ": bad group count");
  if (L.frac_in < 0 || L.frac_in > kMaxFrac || L.frac_out < 0 || L.frac_out > kMaxFrac)
    throw ArgumentError(n + ": fraction bits outside [0, 15]");
  const int in_g = in / L.groups, taps = L.k * L.k;
  L.weight = blob.int8(prefix + ".weight", u32({out, in_g, L.k, L.k}));
  L.bias = blob.int32(prefix + ".bias", u32({out}));
  L.shift = blob.int8(prefix + ".shift", u32({out}));
  for (int o = 0; o < out; ++o) {
    if (L.shift[o] < 0 || L.shift[o] > 31) throw ArgumentError(n + ": shift outside [0, 31]");
    int64_t worst = std::llabs(int64_t(L.bias[o]));
    for (int i = 0; i < in_g * taps; ++i) worst += 32768 * std::llabs(int64_t(L.weight[size_t(o) * in_g * taps + i]));
    if (worst >= kAccLimit) throw ArgumentError(n + ": int32 accumulator could overflow");
  }
  if (L.kind == MeanLayerKind::kConv) {  // out x taps x in_g
    L.packed.resize(L.weight.size());
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in_g; ++i)
        for (int t = 0; t < taps; ++t)
          L.packed[(size_t(o) * taps + t) * in_g + i] = L.weight[(size_t(o) * in_g + i) * taps + t];
  } else {  // per output parity (py, px): out x 4 taps (a, b) x in
    L.packed.resize(size_t(4) * out * 4 * in);
    for (int py = 0; py < 2; ++py)
      for (int px = 0; px < 2; ++px)
        for (int o = 0; o < out; ++o)
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b)
              for (int i = 0; i < in; ++i)
                L.packed[(((size_t(py * 2 + px) * out + o) * 4) + a * 2 + b) * in + i] =
                    L.weight[((size_t(o) * in + i) * 4 + kTapK[py][a]) * 4 + kTapK[px][b]];
  }
  // The fast kernel's layout (see MeanLayer): reduction index kk = tap * in_gp + i, in_gp = in_g rounded
  // up to pairs; a transposed conv's phase (py, px) has taps (a, b) = kernel (kTapK[py][a], kTapK[px][b]).
  const bool transposed = L.kind == MeanLayerKind::kConvTranspose4x4s2;
  const int out_g = out / L.groups, in_gp = in_g + (in_g & 1), gtaps = transposed ? 4 : taps;
  const int phases = transposed ? 4 : 1, blocks = (out_g + kBlock - 1) / kBlock;
  L.gemm_kp = gtaps * in_gp / 2;
  L.gemm_blocks = blocks;
  const size_t w_block = size_t(L.gemm_kp) * 2 * kBlock, padded = size_t(L.groups) * blocks * kBlock;
  L.gemm_w.assign(size_t(phases) * L.groups * blocks * w_block, 0);
  L.gemm_bias.assign(padded, 0);
  L.gemm_shift.assign(padded, 0);
  L.gemm_shift_a.assign(padded, 0);
  L.gemm_shift_b.assign(padded, 0);
  for (int g = 0; g < L.groups; ++g)
    for (int o = 0; o < out_g; ++o) {
      const int og = g * out_g + o;
      const size_t at = (size_t(g) * blocks) * kBlock + o;  // padded output index
      L.gemm_bias[at] = L.bias[og];
      L.gemm_shift[at] = L.shift[og];
      L.gemm_shift_a[at] = std::max(L.shift[og] - 1, 0);
      L.gemm_shift_b[at] = L.shift[og] > 0;
      for (int ph = 0; ph < phases; ++ph)
        for (int t = 0; t < gtaps; ++t)
          for (int i = 0; i < in_g; ++i) {
            const size_t kk = size_t(t) * in_gp + i;
            const int8_t w = transposed ? L.weight[((size_t(og) * in + i) * 4 + kTapK[ph >> 1][t >> 1]) * 4 +
                                                   kTapK[ph & 1][t & 1]]
                                        : L.weight[(size_t(og) * in_g + i) * taps + t];
            L.gemm_w[((size_t(ph) * L.groups + g) * blocks + o / kBlock) * w_block + kk / 2 * 2 * kBlock +
                     (o % kBlock) * 2 + kk % 2] = w;
          }
    }
  return L;
}

InverseGain inverse_gain(int32_t t) {
  // 1/g = 2^(-t * LOG_STEP / (128 ln 2)); A = that exponent in Q32 (floor of the product with the Q32
  // constant), split into an integer n and a fraction phi; 2^phi = e^(phi ln 2) by a 12-term Horner
  // sum in Q30 (relative error < 1e-6 of exp, from the Q32 constant: far below one step of y_hat).
  // Pure integer: identical everywhere.
  constexpr int64_t kLog2PerQ7 = 4842126;       // round(2^32 * ln(60/0.11) / 63 / 128 / ln 2)
  constexpr uint64_t kLn2Q32 = 2977044472u;     // round(2^32 * ln 2)
  constexpr uint64_t kOne = uint64_t{1} << 30;
  const int64_t A = -int64_t(t) * kLog2PerQ7;
  const int64_t n = A >> 32;  // floor
  const uint64_t phi = uint64_t(A - n * (int64_t{1} << 32));
  const uint64_t U = (phi * kLn2Q32) >> 34;  // phi * ln2 in Q30, in [0, ln 2)
  uint64_t acc = kOne;
  for (uint64_t k = 12; k >= 1; --k) acc = kOne + ((U * acc) >> 30) / k;
  return {int64_t(acc), int(n)};
}

namespace {

// The legacy kernel (bench-only): im2col of one output row, gemm_rows, the scalar epilogue.
void run_layer_legacy(const MeanLayer& L, const View16& x, Tensor16& y, unsigned threads) {
  const bool transposed = L.kind == MeanLayerKind::kConvTranspose4x4s2;
  const int out_h = y.h, out_w = y.w;
  const int in = L.in, in_g = in / L.groups, out_g = L.out / L.groups;
  const int taps = transposed ? 4 : L.k * L.k, r = L.k / 2;
  const int K = taps * in_g;  // one group's im2col row
  const size_t col_stride = size_t(taps) * in;
  const GemmRows gemm = gemm_kernel();
  global_pool().parallel_for(size_t(out_h), threads, [&](size_t row) {
    const int Y = int(row);
    // im2col of the row: pixel X -> [group][tap][in_g], zero where a tap falls outside the input.
    std::vector<int16_t> col(size_t(out_w) * col_stride, 0);
    std::vector<int32_t> acc(size_t(out_w) * L.out);
    for (int X = 0; X < out_w; ++X) {
      int16_t* c = col.data() + size_t(X) * col_stride;
      for (int t = 0; t < taps; ++t) {
        int iy, ix;
        if (transposed) {
          iy = (Y >> 1) + kTapOff[Y & 1][t >> 1];
          ix = (X >> 1) + kTapOff[X & 1][t & 1];
        } else {
          iy = Y + t / L.k - r;
          ix = X + t % L.k - r;
        }
        if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
        const int16_t* src = x.v + (size_t(iy) * x.w + ix) * x.stride;
        for (int g = 0; g < L.groups; ++g)
          std::copy(src + g * in_g, src + (g + 1) * in_g, c + (size_t(g) * taps + t) * in_g);
      }
    }
    if (transposed) {  // the two column parities use different weight sets: even X, then odd X
      for (int px = 0; px < 2; ++px) {
        const int16_t* W = L.packed.data() + size_t((Y & 1) * 2 + px) * L.out * 4 * in;
        const int n = (out_w - px + 1) / 2;
        if (n > 0)
          gemm(col.data() + size_t(px) * col_stride, n, K, 2 * col_stride, W, L.out,
                    acc.data() + size_t(px) * L.out, 2 * size_t(L.out));
      }
    } else {
      for (int g = 0; g < L.groups; ++g)
        gemm(col.data() + size_t(g) * K, out_w, K, col_stride, L.packed.data() + size_t(g) * out_g * K, out_g,
                  acc.data() + size_t(g) * out_g, size_t(L.out));
    }
    int16_t* dst = y.v.data() + size_t(Y) * out_w * L.out;
    for (int X = 0; X < out_w; ++X)
      for (int o = 0; o < L.out; ++o) {
        const int64_t a = int64_t(acc[size_t(X) * L.out + o]) + L.bias[o];
        dst[size_t(X) * L.out + o] = activate(round_shift(a, L.shift[o]), L.act, L.frac_out);
      }
  });
}

// One layer on an input view (checked by the callers).
Tensor16 run_layer(const MeanLayer& L, const View16& x, int out_h, int out_w, unsigned threads, Kernel kernel) {
  Tensor16 y;
  y.h = out_h;
  y.w = out_w;
  y.c = L.out;
  y.v.assign(size_t(out_h) * out_w * L.out, 0);
  if (legacy_requested())
    run_layer_legacy(L, x, y, threads);
  else
    run_layer_fast(L, x, y, threads, kernel);
  return y;
}

}  // namespace

Tensor16 run_mean_layer(const MeanLayer& L, const Tensor16& x, int out_h, int out_w, unsigned threads, Kernel kernel) {
  if (x.c != L.in || x.v.size() != size_t(x.h) * x.w * x.c) throw ArgumentError("mean layer: input channels do not match");
  const bool transposed = L.kind == MeanLayerKind::kConvTranspose4x4s2;
  if (transposed ? (out_h < 0 || out_w < 0 || out_h > 2 * x.h || out_w > 2 * x.w) : (out_h != x.h || out_w != x.w))
    throw ArgumentError("mean layer: output size does not match");
  return run_layer(L, View16{x.v.data(), x.h, x.w, x.c}, out_h, out_w, threads, kernel);
}

namespace {

// The layers in order, the first reading the view x.
Tensor16 run_chain(const std::vector<MeanLayer>& layers, const View16& x, unsigned threads, Kernel kernel) {
  Tensor16 y = run_layer(layers[0], x, x.h, x.w, threads, kernel);
  for (size_t l = 1; l < layers.size(); ++l)
    y = run_layer(layers[l], View16{y.v.data(), y.h, y.w, y.c}, y.h, y.w, threads, kernel);
  return y;
}

// requant(v, from, to) with the direction and amount fixed once (callers' loops then vectorise): a rounding
// right shift (no saturation needed: |v| < 2^15 stays in range) or a saturating left shift (by at most 15:
// the product stays below 2^30).
struct Requant {
  int right, left;
  Requant(int from, int to) : right(std::max(from - to, 0)), left(std::max(to - from, 0)) {}
  int16_t operator()(int16_t v) const {
    return right ? int16_t((int32_t(v) + (int32_t{1} << (right - 1))) >> right) : sat16(int32_t(v) * (int32_t{1} << left));
  }
};

// Channels [c0, c0 + n) of an HWC tensor, requantised from frac `from` to `to`, written at channel
// offset `at` of dst (which has dst.c channels and the same h, w).
void copy_channels(const Tensor16& src, int c0, int n, int from, int to, Tensor16& dst, int at) {
  const size_t pixels = size_t(src.h) * src.w;
  const Requant q(from, to);
  for (size_t p = 0; p < pixels; ++p) {
    const int16_t* a = src.v.data() + p * src.c + c0;
    int16_t* b = dst.v.data() + p * dst.c + at;
    if (q.right)
      for (int c = 0; c < n; ++c) b[c] = q(a[c]);
    else
      for (int c = 0; c < n; ++c) b[c] = q(a[c]);
  }
}

// y_hat of a latent value (int16 at y_frac): mu + r / g with 1/g = gm * 2^-gs (gs >= 1, so round_shift(v,
// gs) = (v + half) >> gs); `at` = c * plane + position in the CHW planes.  encode: the encoder's value, r
// made from y (float, need not be exact: it is what gets coded); decode: the decoder's, r given (0 where
// skipped: y_hat = mu).
struct LatentCoder {
  const uint8_t* index;
  const int16_t* residual;
  const float* y;
  const float* gain;
  int16_t* residual_out;
  const int64_t* gm;
  const int64_t* half;  // 2^(gs - 1): round_shift(v, gs) = (v + half) >> gs
  const int* gs;
  float mu_scale;

  int16_t decode(int c, int16_t r, int16_t mu) const {
    return sat16(int64_t(mu) + ((int64_t(r) * gm[c] + half[c]) >> gs[c]));
  }

  // The encoder's r = round((y - mu) * g) is float and need not be exact (docs: the residual is coded).
  int16_t encode(int c, size_t at, int16_t mu) const {
    if (index[at] == kSkip) {
      residual_out[at] = 0;
      return mu;
    }
    const float d = (y[at] - float(mu) * mu_scale) * gain[c];
    const int64_t r = int64_t(std::min(std::max(std::nearbyint(d), -32768.0f), 32767.0f));
    residual_out[at] = int16_t(r);
    return sat16(int64_t(mu) + ((r * gm[c] + half[c]) >> gs[c]));
  }

};

// The decoder's latent values by phase: [stage][i][j][c] for latent position (2i + kStageDy[stage],
// 2j + kStageDx[stage]) -- the HWC layout of the context model's grid.  gather() fills it with the
// residuals, 0 where skipped (and at the even padding outside the latent); DecoderPhases::code turns a
// stage's residuals into y_hat in place; scatter() writes y_hat back into the CHW planes.  gather and
// scatter walk the planes in order, a few at a time, and write / read the phase buffer strided; the
// stages then read and write it contiguously.
struct DecoderPhases {
  int C, hl, wl, h2, w2;
  std::vector<int16_t> v;

  DecoderPhases(int C_, int hl_, int wl_)
      : C(C_), hl(hl_), wl(wl_), h2((hl_ + 1) / 2), w2((wl_ + 1) / 2), v(size_t(4) * h2 * w2 * C_, 0) {}

  size_t at(int Y, int X) const {  // the value of channel 0 at latent position (Y, X)
    return ((size_t(kStageOfPhase[(Y & 1) * 2 + (X & 1)]) * h2 + (Y >> 1)) * w2 + (X >> 1)) * C;
  }
  int16_t* stage(int s) { return v.data() + size_t(s) * h2 * w2 * C; }

  // Tasks: blocks of kLine channels (one cache line of a position's HWC record), row by row: the lines
  // written (read) by a row of a block stay in L1, and each plane is walked in order.
  static constexpr int kLine = 32;

  void gather(const uint8_t* index, const int16_t* residual, unsigned threads) {
    const size_t plane = size_t(hl) * wl;
    global_pool().parallel_for(size_t(C + kLine - 1) / kLine, threads, [&](size_t b) {
      const int c0 = int(b) * kLine, c1 = std::min(C, c0 + kLine);
      for (int Y = 0; Y < hl; ++Y)
        for (int c = c0; c < c1; ++c)
          for (int px = 0; px < 2; ++px) {  // the row's even and odd columns: two phases
            const uint8_t* ix = index + c * plane + size_t(Y) * wl + px;
            const int16_t* rs = residual + c * plane + size_t(Y) * wl + px;
            int16_t* d = v.data() + at(Y, px) + c;
            for (int j = 0; 2 * j + px < wl; ++j) d[size_t(j) * C] = int16_t(rs[2 * j] & -int(ix[2 * j] != kSkip));
          }
    });
  }

  void scatter(int16_t* y_hat, unsigned threads) const {
    const size_t plane = size_t(hl) * wl;
    global_pool().parallel_for(size_t(C + kLine - 1) / kLine, threads, [&](size_t b) {
      const int c0 = int(b) * kLine, c1 = std::min(C, c0 + kLine);
      for (int Y = 0; Y < hl; ++Y)
        for (int c = c0; c < c1; ++c)
          for (int px = 0; px < 2; ++px) {
            int16_t* out = y_hat + c * plane + size_t(Y) * wl + px;
            const int16_t* s = v.data() + at(Y, px) + c;
            for (int j = 0; 2 * j + px < wl; ++j) out[2 * j] = s[size_t(j) * C];
          }
    });
  }
};

Tensor16 empty(int h, int w, int c) {
  Tensor16 t;
  t.h = h;
  t.w = w;
  t.c = c;
  t.v.assign(size_t(h) * w * c, 0);
  return t;
}

}  // namespace

MeanPath::MeanPath(const ModelBlob& blob, int luma_channels, int chroma_channels)
    : channels_{luma_channels, chroma_channels} {
  const std::vector<int32_t> yf = blob.int32("mean.y_frac", {2});
  const char* comp_name[2] = {"luma", "chroma"};
  // topology: hyper-mean output form, context residual, layer count luma, chroma (absent: psi form, the
  // four named layers c1, up, c2, c3, no residual -- the format of the first fixed-point models)
  int layers[2] = {4, 4};
  if (blob.has("mean.topology")) {
    const std::vector<int32_t> t = blob.int32("mean.topology", {4});
    if (t[0] < 0 || t[0] > 1 || t[1] < 0 || t[1] > 1) throw ArgumentError("model: mean.topology: unknown form");
    hyper_output_ = HyperMeanOutput(t[0]);
    context_residual_ = t[1] != 0;
    for (int c = 0; c < 2; ++c) {
      if (t[2 + c] < 1 || t[2 + c] > 16) throw ArgumentError("model: mean.topology: 1..16 hyper-mean layers");
      layers[c] = t[2 + c];
    }
  }
  for (int c = 0; c < 2; ++c) {
    const int C = channels_[c];
    y_frac_[c] = yf[c];
    if (yf[c] < 0 || yf[c] > kMaxFrac) throw ArgumentError("model: mean.y_frac outside [0, 15]");
    const std::string p = std::string("mean.hd_") + comp_name[c] + ".";
    const bool named = !blob.has("mean.topology");
    const char* names[4] = {"c1", "up", "c2", "c3"};
    int in = C;
    for (int l = 0; l < layers[c]; ++l) {
      const bool last = l == layers[c] - 1;
      const int out = named ? (last ? 4 * C : C) : -1;
      hyper_[c].push_back(load_mean_layer(blob, p + (named ? names[l] : std::to_string(l)), in, out));
      in = hyper_[c].back().out;
      if (hyper_[c].back().groups != 1) throw ArgumentError("model: grouped hyper-mean layers are not supported");
      if (l > 0 && hyper_[c][l].frac_in != hyper_[c][l - 1].frac_out)
        throw ArgumentError("model: hyper-mean decoder fraction bits do not chain");
    }
    if (hyper_[c][0].frac_in != 0) throw ArgumentError("model: the hyper-mean decoder reads z_hat at frac 0");
    if (named && (hyper_[c][1].kind != MeanLayerKind::kConvTranspose4x4s2 || hyper_[c][0].kind != MeanLayerKind::kConv ||
                  hyper_[c][2].kind != MeanLayerKind::kConv || hyper_[c][3].kind != MeanLayerKind::kConv))
      throw ArgumentError("model: hyper-mean decoder layers do not have the expected kinds");
    int ups = 0;
    for (const MeanLayer& L : hyper_[c]) ups += L.kind == MeanLayerKind::kConvTranspose4x4s2;
    // psi is on the half latent grid (1 up-sampling from z at a quarter), mu on the latent grid (2)
    const int want_ups = hyper_output_ == HyperMeanOutput::kPsi ? 1 : 2;
    const int want_out = hyper_output_ == HyperMeanOutput::kPsi ? 4 * C : C;
    if (ups != want_ups || in != want_out)
      throw ArgumentError("model: hyper-mean decoder output does not match its form");
  }
  const int C = channels_[0];
  for (int s = 0; s < 4; ++s) {
    const std::string f = "mean.fuse" + std::to_string(s) + ".";
    fusion_[s].push_back(load_mean_layer(blob, f + "a", s ? 2 * C : C, C));
    fusion_[s].push_back(load_mean_layer(blob, f + "b", C, C));
    fusion_[s].push_back(load_mean_layer(blob, f + "c", C, C));
    if (fusion_[s][1].frac_in != fusion_[s][0].frac_out || fusion_[s][2].frac_in != fusion_[s][1].frac_out ||
        fusion_[s][2].frac_out != y_frac_[0])
      throw ArgumentError("model: context fusion fraction bits do not chain to y_frac");
    if (s == 0 && fusion_[0][0].frac_in != psi_frac(0))
      throw ArgumentError("model: stage 0 does not read psi at its own scale");
    if (s > 0) {
      const std::string x = "mean.ctx" + std::to_string(s) + ".";
      context_[s - 1].push_back(load_mean_layer(blob, x + "a", s * C, C));
      context_[s - 1].push_back(load_mean_layer(blob, x + "b", C, C));
      if (context_[s - 1][0].frac_in != y_frac_[0] || context_[s - 1][1].frac_in != context_[s - 1][0].frac_out)
        throw ArgumentError("model: context fraction bits do not chain");
    }
  }
}

Tensor16 MeanPath::hyper_decoder(int comp, const int16_t* z, int hz, int wz, int hl, int wl, unsigned threads,
                                 Kernel kernel) const {
  const int C = channels_[comp];
  const int h2 = (hl + 1) / 2, w2 = (wl + 1) / 2;
  const bool from_mu = hyper_output_ == HyperMeanOutput::kMeanOnLatentGrid;
  const int fh = from_mu ? hl : h2, fw = from_mu ? wl : w2;  // the chain's final grid
  const int ups = from_mu ? 2 : 1;
  if (hz < 1 || wz < 1 || hl < 1 || wl < 1 || fh > (hz << ups) || fw > (wz << ups))
    throw ArgumentError("hyper-mean decoder: latent size must be in [1, 4 x z size]");
  Tensor16 x = empty(hz, wz, C);
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < hz * wz; ++i) x.v[size_t(i) * C + c] = z[size_t(c) * hz * wz + i];
  int remaining = ups;
  for (const MeanLayer& L : hyper_[comp]) {
    if (L.kind == MeanLayerKind::kConvTranspose4x4s2) {
      --remaining;  // crop to the grid this output feeds: ceil(final / 2^remaining)
      x = run_mean_layer(L, x, -(-fh >> remaining), -(-fw >> remaining), threads, kernel);
    } else {
      x = run_mean_layer(L, x, x.h, x.w, threads, kernel);
    }
  }
  if (!from_mu) return x;
  // mu [hl][wl][C] -> psi [h2][w2][4C]: chunk s = mu at the phase of context stage s; the even padding is 0
  Tensor16 psi = empty(h2, w2, 4 * C);
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < h2; ++i)
      for (int j = 0; j < w2; ++j) {
        const int Y = 2 * i + kStageDy[s], X = 2 * j + kStageDx[s];
        if (Y >= hl || X >= wl) continue;
        std::copy_n(x.v.data() + (size_t(Y) * wl + X) * C, C, psi.v.data() + (size_t(i) * w2 + j) * psi.c + s * C);
      }
  return psi;
}

void MeanPath::reconstruct(int comp, const Tensor16& psi, const uint8_t* index, const int32_t* offsets, int hl,
                           int wl, const int16_t* residual, const float* y, const float* gain, int16_t* residual_out,
                           int16_t* y_hat_q, unsigned threads, Kernel kernel) const {
  const int C = channels_[comp], fy = y_frac_[comp];
  const int h2 = (hl + 1) / 2, w2 = (wl + 1) / 2;
  if (psi.h != h2 || psi.w != w2 || psi.c != 4 * C) throw ArgumentError("reconstruct: psi does not match the latent");
  if ((residual == nullptr) == (y == nullptr) || (y && (!gain || !residual_out)))
    throw ArgumentError("reconstruct: give either the residual (decoder) or y and gain (encoder)");
  std::vector<int64_t> gm(C), half(C);
  std::vector<int> gs(C);
  for (int c = 0; c < C; ++c) {
    const InverseGain ig = inverse_gain(offsets[c]);
    const int s = 30 - ig.exponent - fy;
    if (s < 1) throw BitstreamError(comp ? "gain_log_chroma" : "gain_log_luma", "gain outside the decodable range");
    gm[c] = ig.mantissa;
    gs[c] = std::min(s, 62);  // |r * m| < 2^47: any larger shift rounds to 0 all the same
    half[c] = int64_t{1} << (gs[c] - 1);
  }
  if (legacy_requested())
    return reconstruct_legacy(comp, psi, index, hl, wl, residual, y, gain, residual_out, y_hat_q, threads, gm.data(),
                              gs.data());
  const size_t plane = size_t(hl) * wl;
  const LatentCoder coder{index, residual, y, gain, residual_out, gm.data(), half.data(), gs.data(),
                          std::ldexp(1.0f, -fy)};
  // Rows in parallel (disjoint outputs).  The decoder, the hot path, first gathers the residuals by phase
  // (DecoderPhases: each CHW plane read in order), runs the stages on that HWC copy, and scatters y_hat
  // back.  The encoder (float y, rate trials) reads the CHW planes in place, a row at a time and a block
  // of kChannelBlock channels at a time, so that the block's lines of the planes (index, y, residual,
  // y_hat) and of the row's HWC tensors stay in L1 while the row is walked.
  constexpr int kChannelBlock = 16;

  if (comp == 1) {  // chroma: mu = psi chunk of the position's phase, no context
    const Requant to_y(psi_frac(1), fy);
    auto rows = [&]() {  // the encoder
      global_pool().parallel_for(size_t(hl), threads, [&](size_t row) {
        const int Y = int(row);
        auto mu = [&](int X, int c) {
          return to_y(psi.v[(size_t(Y >> 1) * w2 + (X >> 1)) * psi.c + kStageOfPhase[(Y & 1) * 2 + (X & 1)] * C + c]);
        };
        for (int c0 = 0; c0 < C; c0 += kChannelBlock)
          for (int X = 0; X < wl; ++X)
            for (int c = c0; c < std::min(C, c0 + kChannelBlock); ++c) {
              const size_t at = size_t(c) * plane + size_t(Y) * wl + X;
              y_hat_q[at] = coder.encode(c, at, mu(X, c));
            }
      });
    };
    if (y) {
      rows();
    } else {
      DecoderPhases ph(C, hl, wl);
      ph.gather(index, residual, threads);
      for (int s = 0; s < 4; ++s) {
        int16_t* r = ph.stage(s);
        global_pool().parallel_for(size_t(h2), threads, [&](size_t i) {
          for (size_t q = i * w2; q < (i + 1) * w2; ++q)
            for (int c = 0; c < C; ++c) r[q * C + c] = coder.decode(c, r[q * C + c], to_y(psi.v[q * psi.c + s * C + c]));
        });
      }
      ph.scatter(y_hat_q, threads);
    }
    return;
  }
  const int fpsi = psi_frac(0);
  const Requant psi_to_y(fpsi, fy);
  Tensor16 decoded = empty(h2, w2, 3 * C);  // y_hat phases of stages 0..2, the context of the later ones
  std::unique_ptr<DecoderPhases> ph;
  if (!y) {
    ph.reset(new DecoderPhases(C, hl, wl));
    ph->gather(index, residual, threads);
  }
  for (int s = 0; s < 4; ++s) {
    // the fusion's input: stage 0 psi_0; later stages [context(y_hat of stages < s), psi_s], requantised
    Tensor16 mu;
    const int fin = fusion_[s][0].frac_in;
    if (s == 0 && fin == fpsi) {
      mu = run_chain(fusion_[0], View16{psi.v.data(), h2, w2, psi.c}, threads, kernel);  // psi_0 in place
    } else if (s == 0) {
      Tensor16 in = empty(h2, w2, C);
      copy_channels(psi, 0, C, fpsi, fin, in, 0);
      mu = run_chain(fusion_[0], View16{in.v.data(), h2, w2, C}, threads, kernel);
    } else {
      const Tensor16 ctx = run_chain(context_[s - 1], View16{decoded.v.data(), h2, w2, decoded.c}, threads, kernel);
      Tensor16 in = empty(h2, w2, 2 * C);
      copy_channels(ctx, 0, C, context_[s - 1][1].frac_out, fin, in, 0);
      copy_channels(psi, s * C, C, fpsi, fin, in, C);
      mu = run_chain(fusion_[s], View16{in.v.data(), h2, w2, 2 * C}, threads, kernel);
    }
    const int dy = kStageDy[s], dx = kStageDx[s];
    global_pool().parallel_for(size_t(h2), threads, [&](size_t row) {
      const int i = int(row), Y = 2 * i + dy;
      const int inside = Y < hl ? (wl - dx + 1) / 2 : 0;  // positions j < inside are in the latent; the
                                                         // others are the even padding: skipped, y_hat = mu
      for (int c0 = 0; c0 < C; c0 += ph ? C : kChannelBlock)
        for (int j = 0; j < w2; ++j) {
          const size_t q = size_t(i) * w2 + j, at = size_t(Y) * wl + 2 * size_t(j) + dx;
          const int16_t* m = mu.v.data() + q * C;
          const int16_t* p = psi.v.data() + q * psi.c + s * C;
          int16_t* d = decoded.v.data() + q * decoded.c + s * C;
          int16_t* r = ph ? ph->stage(s) + q * C : nullptr;  // decoder: residuals in, y_hat out
          for (int c = c0; c < std::min(C, c0 + (ph ? C : kChannelBlock)); ++c) {
            // residual context model: the stage predicts a correction to psi_s (the hyper-mean of the phase)
            int16_t v = context_residual_ ? sat16(int32_t(m[c]) + psi_to_y(p[c])) : m[c];
            if (r)
              r[c] = v = coder.decode(c, r[c], v);
            else if (j < inside)
              y_hat_q[size_t(c) * plane + at] = v = coder.encode(c, size_t(c) * plane + at, v);
            if (s < 3) d[c] = v;
          }
        }
    });
  }
  if (ph) ph->scatter(y_hat_q, threads);
}

// ---------------------------------------------------------------------------------------------------
// The previous reconstruct (bench-only, with the legacy layer kernel under JPEGAI_FAST_MEAN_LEGACY=1): one
// position at a time across the channels, reading and writing the CHW planes in place, the context
// stages' input copied out of the decoded phases, requantisation per value.  Same integers.
void MeanPath::reconstruct_legacy(int comp, const Tensor16& psi, const uint8_t* index, int hl, int wl,
                                  const int16_t* residual, const float* y, const float* gain, int16_t* residual_out,
                                  int16_t* y_hat_q, unsigned threads, const int64_t* gm, const int* gs) const {
  const int C = channels_[comp], fy = y_frac_[comp];
  const int h2 = (hl + 1) / 2, w2 = (wl + 1) / 2;
  const size_t plane = size_t(hl) * wl;
  const float mu_scale = std::ldexp(1.0f, -fy);
  auto requant = [](int16_t v, int from, int to) {
    return from >= to ? sat16(round_shift(v, from - to)) : sat16(int64_t(v) * (int64_t{1} << (to - from)));
  };
  auto copy = [&](const Tensor16& src, int c0, int n, int from, int to, Tensor16& dst, int at) {
    for (size_t p = 0; p < size_t(src.h) * src.w; ++p)
      for (int c = 0; c < n; ++c) dst.v[p * dst.c + at + c] = requant(src.v[p * src.c + c0 + c], from, to);
  };
  auto chain = [&](const std::vector<MeanLayer>& layers, Tensor16 x) {
    for (const MeanLayer& L : layers) x = run_mean_layer(L, x, x.h, x.w, threads);
    return x;
  };
  auto code = [&](int c, size_t pos, int16_t mu) -> int16_t {
    const size_t at = size_t(c) * plane + pos;
    if (index[at] == kSkip) {
      if (residual_out) residual_out[at] = 0;
      return mu;
    }
    int32_t r;
    if (y) {
      const float d = (y[at] - float(mu) * mu_scale) * gain[c];
      r = int32_t(std::min(std::max(std::nearbyint(d), -32768.0f), 32767.0f));
      residual_out[at] = int16_t(r);
    } else {
      r = residual[at];
    }
    return sat16(int64_t(mu) + round_shift(int64_t(r) * gm[c], gs[c]));
  };
  if (comp == 1) {
    const int fpsi = psi_frac(1);
    for (int Y = 0; Y < hl; ++Y)
      for (int X = 0; X < wl; ++X) {
        const int stage = kStageOfPhase[(Y & 1) * 2 + (X & 1)];
        const int16_t* p = psi.v.data() + (size_t(Y >> 1) * w2 + (X >> 1)) * psi.c + stage * C;
        for (int c = 0; c < C; ++c)
          y_hat_q[size_t(c) * plane + size_t(Y) * wl + X] = code(c, size_t(Y) * wl + X, requant(p[c], fpsi, fy));
      }
    return;
  }
  const int fpsi = psi_frac(0);
  Tensor16 decoded = empty(h2, w2, 3 * C);
  for (int s = 0; s < 4; ++s) {
    Tensor16 in;
    if (s == 0) {
      in = empty(h2, w2, C);
      copy(psi, 0, C, fpsi, fusion_[0][0].frac_in, in, 0);
    } else {
      Tensor16 prev = empty(h2, w2, s * C);
      copy(decoded, 0, s * C, fy, fy, prev, 0);
      const Tensor16 ctx = chain(context_[s - 1], std::move(prev));
      const int fcat = fusion_[s][0].frac_in;
      in = empty(h2, w2, 2 * C);
      copy(ctx, 0, C, context_[s - 1][1].frac_out, fcat, in, 0);
      copy(psi, s * C, C, fpsi, fcat, in, C);
    }
    const Tensor16 mu = chain(fusion_[s], std::move(in));
    const int dy = kStageDy[s], dx = kStageDx[s];
    for (int i = 0; i < h2; ++i)
      for (int j = 0; j < w2; ++j) {
        const int Y = 2 * i + dy, X = 2 * j + dx;
        const bool inside = Y < hl && X < wl;
        const int16_t* m = mu.v.data() + (size_t(i) * w2 + j) * C;
        const int16_t* p = psi.v.data() + (size_t(i) * w2 + j) * psi.c + s * C;
        for (int c = 0; c < C; ++c) {
          const int16_t mc = context_residual_ ? sat16(int32_t(m[c]) + requant(p[c], fpsi, fy)) : m[c];
          const int16_t v = inside ? code(c, size_t(Y) * wl + X, mc) : mc;
          if (inside) y_hat_q[size_t(c) * plane + size_t(Y) * wl + X] = v;
          if (s < 3) decoded.v[(size_t(i) * w2 + j) * decoded.c + s * C + c] = v;
        }
      }
  }
}

}  // namespace jpegai
