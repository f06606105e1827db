// int16 x int16 -> int32 register-tiled GEMM tiles (pmaddwd / vpdpwssd), shared by the integer hyper-scale
// decoder (hyper_scale_decoder.cpp) and the fixed-point mean path (mean_path.cpp).
//
//   acc[o][p] = bias[o] + sum_k w[o][k] * x[k][p]        o: outputs, p: positions, k: reduction (taps x channels)
//
// A tile is MR blocks of 16 outputs x NR positions, its MR x NR accumulators (16 int32 lanes each) held in
// registers over the whole reduction; then the caller's epilogue (`Job`) finishes each (block, position).
// Tile sets: AVX-512BW + AVX512_VNNI and AVX-512BW 32 x 12 (24 of the 32 zmm), AVX2 16 x 6 (12 of the 16
// ymm), plain C++ 16 x 4 (the baseline twin); on AVX2 a k step is 2 weight loads, 6 broadcasts, 12 pmaddwd
// and 12 paddd, and the vector ALUs, not the loads, are the limit.
//
// Read me first (the traps):
//  * Exactness.  pmaddwd multiplies int16 pairs and adds the two products in int32; it saturates only for
//    (-32768)(-32768) + (-32768)(-32768).  Callers keep one operand (the weights) in int8 range, so a pair
//    sum is at most 2 * 128 * 32768 = 2^23 in magnitude: never saturated.  The accumulator starts at the
//    bias and the callers reject, at load time, any layer whose |bias| + sum|w| * max|x| reaches 2^31, so
//    no partial sum leaves int32 whatever the order of addition: every tile set gives exactly the sums of
//    the scalar definition.  (vpdpwssd, the VNNI form, is the wrapping one, not vpdpwssds: with no
//    overflow possible they agree, but only the wrapping one is the plain sum.)  The plain C++ tile must
//    compute in int32 the same bounded sums (no signed overflow there either: it would be UB).
//  * Layouts.  Weights: [block][k][16][2] int16 (output block of 16, reduction pair, output lane, pair
//    element); zero for padded outputs (a partial last block) and for a padded reduction element (an odd
//    channel count).  Positions: Operands::x, one pointer per (tap, position) to the position's first
//    pair of that tap, the next pairs `step` int16 apart; one 32-bit load broadcasts a pair to all lanes.
//    Straight from an HWC tensor (step 2; the caller points taps outside the picture at a zero row) or
//    from a packed im2col panel [k][NR][2] (pack_panel; step 2 NR) -- the panel is needed where a pair
//    would straddle two groups (odd channel count per group) and is what the HSD uses.
//  * Target attributes, not global -m flags: the shipped module is built for baseline x86-64 and the
//    tiles are chosen at run time from cpu_features().  A Job's store_zmm / store_ymm epilogue uses
//    intrinsics, so it must carry a target attribute included in the tile's that inlines it (GCC refuses
//    to inline an intrinsic into a function without that target: "target specific option mismatch").
//    The VNNI tile is a separate function from the plain AVX-512 one (not a template flag inside one
//    function with VNNI enabled): the plain one must never be compiled where VNNI may be emitted.
//  * Tails: a tile set has every NR from 1 to nr and MR from 1 to mr_max (fn[mr - 1][nr - 1]), so a row
//    of positions or a group of outputs that is not a multiple of the tile is still one tile call; the
//    epilogue is told how many lanes of the last block are real (the rest are computed on zero weights
//    and must not be stored).
//  * Loads of a pair go through memcpy (a 32-bit load of two int16: no aliasing UB).
//  * No AVX-512 here?  tools/avx512_emulated.sh tests the AVX-512 tiles under SIMDe emulation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu_features.hpp"
#include "residual_coder.hpp"  // Kernel

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define JPEGAI_GEMM16_X86 1
#include <immintrin.h>
#ifndef JPEGAI_TARGET_AVX512  // both predefined empty only by the SIMDe-emulated test build (tools/avx512_emulated.sh)
#define JPEGAI_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define JPEGAI_TARGET_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#endif
#define JPEGAI_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define JPEGAI_GEMM16_X86 0
#endif

namespace jpegai {
namespace gemm16 {

constexpr int kBlock = 16;  // outputs per packed weight block: 16 int32 lanes = one zmm or two ymm
constexpr int kMaxMR = 2;   // blocks per tile at most (AVX-512: 2 x 12 accumulators of the 32 zmm)
constexpr int kMaxNR = 12;  // positions per tile at most

// What one tile multiplies.  The reduction is `taps` runs of `pairs` pairs (k = tap * pairs + c); position p
// reads its pair c of tap t at x[t * NR + p] + c * step.  Two ways to feed it: straight from an HWC int16
// tensor (step 2: a tap's pointer is the input position's first channel, or a zero row for a tap outside
// the picture), or from a packed panel [kp][NR][2] (one tap, pairs = kp, step = 2 NR, x[p] = panel + 2 p).
struct Operands {
  const int16_t* w;            // packed weights of the tile's first output block: [taps * pairs][16][2]
  size_t w_block;              // int16 from one output block to the next (= taps * pairs * 32)
  const int16_t* const* x;     // [taps][NR] pointers (see above), each plus x_offset
  ptrdiff_t x_offset;
  int taps, pairs;
  ptrdiff_t step;              // int16 from one pair of a position to its next
  const int32_t* bias;         // bias of the tile's first output (padded to whole blocks)
};

inline int32_t load_pair(const int16_t* x) {
  int32_t v;
  std::memcpy(&v, x, sizeof v);
  return v;
}

// Plain C++ tile (the baseline twin; what non-x86 builds run).  Epilogue: job.store_lanes(m, p, lanes)
// with the 16 int32 sums of block m at position p.
template <int MR, int NR, class Job>
void tile_generic(const Job& job) {
  const Operands& t = job.op;
  int32_t acc[NR][MR * kBlock];
  for (int p = 0; p < NR; ++p)
    for (int v = 0; v < MR * kBlock; ++v) acc[p][v] = t.bias[v];
  const int16_t* wk = t.w;
  for (int tap = 0; tap < t.taps; ++tap) {
    const int16_t* xs[NR];
    for (int p = 0; p < NR; ++p) xs[p] = t.x[size_t(tap) * NR + p] + t.x_offset;
    for (int c = 0; c < t.pairs; ++c, wk += 2 * kBlock) {
      for (int m = 0; m < MR; ++m) {
        // The pair's two weights per output, each contiguous; int16 x int16 -> int32 products are
        // what baseline SIMD (SSE2 pmaddwd/pmullw, NEON smull) widens without a 32-bit multiply.
        int16_t w0[kBlock], w1[kBlock];
        for (int v = 0; v < kBlock; ++v) w0[v] = wk[m * t.w_block + 2 * v], w1[v] = wk[m * t.w_block + 2 * v + 1];
        for (int p = 0; p < NR; ++p) {
          const int16_t x0 = xs[p][c * t.step], x1 = xs[p][c * t.step + 1];
          for (int v = 0; v < kBlock; ++v)
            acc[p][m * kBlock + v] += int32_t(w0[v]) * int32_t(x0) + int32_t(w1[v]) * int32_t(x1);
        }
      }
    }
  }
  for (int p = 0; p < NR; ++p)
    for (int m = 0; m < MR; ++m) job.store_lanes(m, p, &acc[p][m * kBlock]);
}

#if JPEGAI_GEMM16_X86
// AVX-512BW tile: one zmm = 16 outputs of one position; MR x NR accumulators (<= 24 of 32 registers).
// Epilogue: job.store_zmm(m, p, acc).
template <int MR, int NR, class Job>
JPEGAI_TARGET_AVX512 void tile_avx512(const Job& job) {
  const Operands& t = job.op;
  __m512i acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m512i b = _mm512_loadu_si512(t.bias + m * kBlock);
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) acc[m][p] = b;
  }
  const int16_t* w = t.w;
  const ptrdiff_t end = t.pairs * t.step;
  for (int tap = 0; tap < t.taps; ++tap) {
    const int16_t* xs[NR];
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) xs[p] = t.x[size_t(tap) * NR + p] + t.x_offset;
    for (ptrdiff_t off = 0; off < end; off += t.step, w += 2 * kBlock) {
      __m512i wv[MR];
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) wv[m] = _mm512_loadu_si512(w + m * t.w_block);
#pragma GCC unroll 16
      for (int p = 0; p < NR; ++p) {
        const __m512i xb = _mm512_set1_epi32(load_pair(xs[p] + off));
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) acc[m][p] = _mm512_add_epi32(acc[m][p], _mm512_madd_epi16(wv[m], xb));
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) job.store_zmm(m, p, acc[m][p]);
}

// The same tile with AVX512_VNNI: vpdpwssd adds the pair products to the accumulator in one instruction
// (no saturation: the non-"s" form wraps, and the sums cannot leave int32).  Kept identical to tile_avx512
// but for that line (separate functions: the non-VNNI one must not be compiled with VNNI enabled).
template <int MR, int NR, class Job>
JPEGAI_TARGET_AVX512VNNI void tile_avx512vnni(const Job& job) {
  const Operands& t = job.op;
  __m512i acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m512i b = _mm512_loadu_si512(t.bias + m * kBlock);
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) acc[m][p] = b;
  }
  const int16_t* w = t.w;
  const ptrdiff_t end = t.pairs * t.step;
  for (int tap = 0; tap < t.taps; ++tap) {
    const int16_t* xs[NR];
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) xs[p] = t.x[size_t(tap) * NR + p] + t.x_offset;
    for (ptrdiff_t off = 0; off < end; off += t.step, w += 2 * kBlock) {
      __m512i wv[MR];
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) wv[m] = _mm512_loadu_si512(w + m * t.w_block);
#pragma GCC unroll 16
      for (int p = 0; p < NR; ++p) {
        const __m512i xb = _mm512_set1_epi32(load_pair(xs[p] + off));
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) acc[m][p] = _mm512_dpwssd_epi32(acc[m][p], wv[m], xb);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) job.store_zmm(m, p, acc[m][p]);
}

// AVX2 tile: two ymm = 16 outputs of one position; 2 x NR accumulators (12 of the 16 registers at NR 6).
// Epilogue: job.store_ymm(p, outputs 0-7, outputs 8-15).
template <int MR, int NR, class Job>
JPEGAI_TARGET_AVX2 void tile_avx2(const Job& job) {
  static_assert(MR == 1, "AVX2 tiles are one 16-output block wide");
  const Operands& t = job.op;
  __m256i acc[2][NR];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bias + 8));
#pragma GCC unroll 16
  for (int p = 0; p < NR; ++p) acc[0][p] = b0, acc[1][p] = b1;
  const int16_t* w = t.w;
  const ptrdiff_t end = t.pairs * t.step;
  for (int tap = 0; tap < t.taps; ++tap) {
    const int16_t* xs[NR];
#pragma GCC unroll 16
    for (int p = 0; p < NR; ++p) xs[p] = t.x[size_t(tap) * NR + p] + t.x_offset;
    for (ptrdiff_t off = 0; off < end; off += t.step, w += 2 * kBlock) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + kBlock));
#pragma GCC unroll 16
      for (int p = 0; p < NR; ++p) {
        const __m256i xb = _mm256_set1_epi32(load_pair(xs[p] + off));
        acc[0][p] = _mm256_add_epi32(acc[0][p], _mm256_madd_epi16(w0, xb));
        acc[1][p] = _mm256_add_epi32(acc[1][p], _mm256_madd_epi16(w1, xb));
      }
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < NR; ++p) job.store_ymm(p, acc[0][p], acc[1][p]);
}
#endif

// One instruction set's tiles for one Job type: fn[mr - 1][n - 1] for mr <= mr_max blocks, n <= nr positions.
template <class Job>
struct TileSet {
  int mr_max, nr;
  void (*fn[kMaxMR][kMaxNR])(const Job&);
};

namespace detail {
enum class Isa { kGeneric, kAvx2, kAvx512, kAvx512Vnni };

template <Isa I, int MR, int NR, class Job>
void run_tile(const Job& job) {
#if JPEGAI_GEMM16_X86
  if constexpr (I == Isa::kAvx512Vnni) return tile_avx512vnni<MR, NR>(job);
  if constexpr (I == Isa::kAvx512) return tile_avx512<MR, NR>(job);
  if constexpr (I == Isa::kAvx2) return tile_avx2<MR, NR>(job);
#endif
  if constexpr (I == Isa::kGeneric) tile_generic<MR, NR>(job);
}

template <Isa I, int MR, class Job, int... N>
void fill_row(void (*(&row)[kMaxNR])(const Job&), std::integer_sequence<int, N...>) {
  ((row[N] = &run_tile<I, MR, N + 1, Job>), ...);
}

// The tile shapes: plain C++ 16 outputs x 4 positions (64 accumulators the compiler can vectorise);
// AVX-512 (with or without VNNI) 32 x 12 (and 16 x 12 for an odd block); AVX2 16 x 6.
template <Isa I, class Job>
TileSet<Job> make() {
  constexpr bool zmm = I == Isa::kAvx512 || I == Isa::kAvx512Vnni;
  TileSet<Job> s{1, zmm ? 12 : I == Isa::kAvx2 ? 6 : 4, {}};
  if constexpr (zmm) {
    fill_row<I, 1>(s.fn[0], std::make_integer_sequence<int, 12>{});
    fill_row<I, 2>(s.fn[1], std::make_integer_sequence<int, 12>{});
    s.mr_max = 2;
  } else if constexpr (I == Isa::kAvx2) {
    fill_row<I, 1>(s.fn[0], std::make_integer_sequence<int, 6>{});
  } else {
    fill_row<I, 1>(s.fn[0], std::make_integer_sequence<int, 4>{});
  }
  return s;
}
}  // namespace detail

// The tiles for this call: the forced-baseline switch (JPEGAI_FAST_SIMD=scalar) and the caps
// (JPEGAI_FAST_SIMD=avx2: no AVX-512; =avx512: AVX-512 without VNNI) are in cpu_features(); Kernel::kAvx2
// caps at AVX2 and Kernel::kScalar asks for the plain C++ tiles, whatever the CPU.
template <class Job>
const TileSet<Job>& tile_set(Kernel kernel) {
  static const TileSet<Job> generic = detail::make<detail::Isa::kGeneric, Job>();
#if JPEGAI_GEMM16_X86
  static const TileSet<Job> avx512vnni = detail::make<detail::Isa::kAvx512Vnni, Job>();
  static const TileSet<Job> avx512 = detail::make<detail::Isa::kAvx512, Job>();
  static const TileSet<Job> avx2 = detail::make<detail::Isa::kAvx2, Job>();
  const CpuFeatures& f = cpu_features();
  if (f.baseline_only || kernel == Kernel::kScalar) return generic;
  if (f.avx512vnni && kernel != Kernel::kAvx2) return avx512vnni;
  if (f.avx512 && kernel != Kernel::kAvx2) return avx512;
  if (f.avx2) return avx2;
#else
  (void)kernel;
#endif
  return generic;
}

// The im2col panel of n (<= kMaxNR) consecutive positions q0 .. q0 + n - 1 of a grid `grid_w` wide
// (position q = (i, j) = (q / grid_w, q % grid_w)): panel[kp][p][2] with kp = tap * ceil(cn / 2) + c / 2
// (tap-major, then pairs of channels; an odd cn gets a zero second element in its last pair).  Tap t reads
// the input at (i + dy[t], j + dx[t]) of an HWC int16 tensor h x w with `stride` channels per position,
// channels c0 .. c0 + cn - 1; outside the tensor it reads `zeros` (at least cn zeros).
inline void pack_panel(const int16_t* act, int h, int w, int stride, int c0, int cn, const int16_t* zeros,
                       const int* dy, const int* dx, int taps, int grid_w, int q0, int n, int16_t* panel) {
  const int pairs = cn / 2, half = (cn + 1) / 2;
  const int16_t* src[kMaxNR];
  for (int t = 0; t < taps; ++t) {
    for (int p = 0; p < n; ++p) {
      const int q = q0 + p, yy = q / grid_w + dy[t], xx = q % grid_w + dx[t];
      src[p] = (yy < 0 || yy >= h || xx < 0 || xx >= w) ? zeros : act + (size_t(yy) * w + xx) * stride + c0;
    }
    int16_t* dst = panel + size_t(t) * half * n * 2;
    for (int c = 0; c < pairs; ++c, dst += 2 * n)
      for (int p = 0; p < n; ++p) std::memcpy(dst + 2 * p, src[p] + 2 * c, 2 * sizeof(int16_t));
    if (pairs < half)
      for (int p = 0; p < n; ++p) dst[2 * p] = src[p][cn - 1], dst[2 * p + 1] = 0;
  }
}

}  // namespace gemm16
}  // namespace jpegai
