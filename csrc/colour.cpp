#include "colour.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_features.hpp"
#include "thread_pool.hpp"

namespace jpegai {
namespace {

// BT.709 full range, written exactly as colour.py computes them (float64).
constexpr double kKr = 0.2126, kKb = 0.0722;
constexpr double kKg = 1.0 - kKr - kKb;
constexpr double kCbDiv = 2.0 * (1.0 - kKb), kCrDiv = 2.0 * (1.0 - kKr);
constexpr int kRowsPerTask = 16;  // luma rows per pool task

// One luma row from its chroma row (float64, vertically interpolated, one replicated column): the
// horizontal interpolation, the matrix, rounding and clamping.  Straight loops over arrays so each clone
// vectorises (vdivpd, vroundpd); every clone does the same IEEE operations, so the bytes are identical.
inline __attribute__((always_inline)) void convert_row_body(const float* yr, const double* cb, const double* cr,
                                                            int w, double* scratch, uint8_t* o) {
  double* cbx = scratch;
  double* crx = scratch + w;
  double* rgb = scratch + 2 * w;  // 3 x w
  for (int X = 0; X < w; ++X) {
    const int j = X >> 1;
    const double odd = X & 1;  // both forms computed, one kept: a blend the compiler vectorises (values exact)
    cbx[X] = odd != 0.0 ? (cb[j] + cb[j + 1]) * 0.5 : cb[j];
    crx[X] = odd != 0.0 ? (cr[j] + cr[j + 1]) * 0.5 : cr[j];
  }
  for (int X = 0; X < w; ++X) {
    const double yy = double(yr[X]);
    const double r = yy + crx[X] * kCrDiv;
    const double b = yy + cbx[X] * kCbDiv;
    double g = yy - r * kKr;
    g = g - b * kKb;
    g = g / kKg;
    rgb[X] = r;
    rgb[w + X] = g;
    rgb[2 * w + X] = b;
  }
  for (int k = 0; k < 3; ++k)
    for (int X = 0; X < w; ++X) {
      const double v = std::rint(rgb[size_t(k) * w + X]);  // round half to even (default mode), as np.rint
      o[3 * X + k] = uint8_t(v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v));
    }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void convert_row(
    const float* yr, const double* cb, const double* cr, int w, double* scratch, uint8_t* o) {
  convert_row_body(yr, cb, cr, w, scratch, o);
}

// The baseline twin, run under the forced-baseline switch (JPEGAI_FAST_SIMD=scalar).
void convert_row_baseline(const float* yr, const double* cb, const double* cr, int w, double* scratch, uint8_t* o) {
  convert_row_body(yr, cb, cr, w, scratch, o);
}

// ---- AVX2 row kernel: 16 pixels per step, the same float64 operations in the same order --------------------
// No FMA in the target on purpose (a fused multiply-add rounds once: other bytes than the numpy definition).
// _mm256_round_pd(nearest) is np.rint's round-half-to-even; the clamp runs on integral values, so converting
// to int32 and packing with saturation is exact.

// pshufb masks that interleave 16 R, 16 G and 16 B bytes into 48 bytes R0 G0 B0 R1 ...: out chunk m (16 bytes)
// = OR over channels c of shuffle(channel c, mask[m][c]); 0x80 zeroes a byte.
struct InterleaveMasks {
  alignas(16) uint8_t m[3][3][16];
  InterleaveMasks() {
    for (int chunk = 0; chunk < 3; ++chunk)
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 16; ++i) {
          const int k = 16 * chunk + i;
          m[chunk][c][i] = (k % 3 == c) ? uint8_t(k / 3) : uint8_t(0x80);
        }
  }
};
const InterleaveMasks kInterleave;

// 8 pixels' horizontally interpolated chroma from c[0..4]: [c0, ½(c0+c1), c1, ½(c1+c2)] and the next four.
__attribute__((target("avx2"))) inline void chroma8(const double* c, __m256d out[2]) {
  const __m256d a = _mm256_loadu_pd(c), b = _mm256_loadu_pd(c + 1);
  const __m256d h = _mm256_mul_pd(_mm256_add_pd(a, b), _mm256_set1_pd(0.5));
  const __m256d lo = _mm256_unpacklo_pd(a, h), hi = _mm256_unpackhi_pd(a, h);  // [c0 h0 c2 h2], [c1 h1 c3 h3]
  out[0] = _mm256_permute2f128_pd(lo, hi, 0x20);
  out[1] = _mm256_permute2f128_pd(lo, hi, 0x31);
}

__attribute__((target("avx2"))) inline __m128i to_byte_range(__m256d v) {
  v = _mm256_round_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_min_pd(_mm256_max_pd(v, _mm256_setzero_pd()), _mm256_set1_pd(255.0));
  return _mm256_cvtpd_epi32(v);
}

__attribute__((target("avx2"))) void convert_row_avx2(const float* yr, const double* cb, const double* cr, int w,
                                                       double* scratch, uint8_t* o) {
  const __m256d cr_div = _mm256_set1_pd(kCrDiv), cb_div = _mm256_set1_pd(kCbDiv);
  const __m256d kr = _mm256_set1_pd(kKr), kb = _mm256_set1_pd(kKb), kg = _mm256_set1_pd(kKg);
  int X = 0;
  for (; X + 16 <= w; X += 16) {
    __m128i rgb16[3][2];  // per channel: pixels 0-7 and 8-15 as int16
    for (int half = 0; half < 2; ++half) {
      const int x8 = X + 8 * half;
      __m256d cbx[2], crx[2];
      chroma8(cb + (x8 >> 1), cbx);  // reads up to index x8/2 + 4 <= wc: the replicated column
      chroma8(cr + (x8 >> 1), crx);
      __m128i r32[2], g32[2], b32[2];
      for (int q = 0; q < 2; ++q) {
        const __m256d yy = _mm256_cvtps_pd(_mm_loadu_ps(yr + x8 + 4 * q));
        const __m256d r = _mm256_add_pd(yy, _mm256_mul_pd(crx[q], cr_div));
        const __m256d b = _mm256_add_pd(yy, _mm256_mul_pd(cbx[q], cb_div));
        __m256d g = _mm256_sub_pd(yy, _mm256_mul_pd(r, kr));
        g = _mm256_sub_pd(g, _mm256_mul_pd(b, kb));
        g = _mm256_div_pd(g, kg);
        r32[q] = to_byte_range(r);
        g32[q] = to_byte_range(g);
        b32[q] = to_byte_range(b);
      }
      rgb16[0][half] = _mm_packs_epi32(r32[0], r32[1]);
      rgb16[1][half] = _mm_packs_epi32(g32[0], g32[1]);
      rgb16[2][half] = _mm_packs_epi32(b32[0], b32[1]);
    }
    __m128i ch[3];
    for (int c = 0; c < 3; ++c) ch[c] = _mm_packus_epi16(rgb16[c][0], rgb16[c][1]);
    for (int chunk = 0; chunk < 3; ++chunk) {
      __m128i v = _mm_setzero_si128();
      for (int c = 0; c < 3; ++c)
        v = _mm_or_si128(v, _mm_shuffle_epi8(ch[c], _mm_load_si128(
                                                     reinterpret_cast<const __m128i*>(kInterleave.m[chunk][c]))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 3 * X + 16 * chunk), v);
    }
  }
  if (X < w)  // the last w % 16 pixels (X even: their chroma starts at X/2)
    convert_row_body(yr + X, cb + (X >> 1), cr + (X >> 1), w - X, scratch, o + 3 * size_t(X));
}

}  // namespace

void yuv420_to_rgb(const float* y, const float* uv, int h, int w, uint8_t* out, unsigned threads) {
  const int hc = (h + 1) / 2, wc = (w + 1) / 2;
  const size_t cplane = size_t(hc) * wc;
  const int tasks = (h + kRowsPerTask - 1) / kRowsPerTask;
  const CpuFeatures& cpu = cpu_features();
  void (*const convert)(const float*, const double*, const double*, int, double*, uint8_t*) =
      cpu.baseline_only ? convert_row_baseline : (cpu.avx2 ? convert_row_avx2 : convert_row);
  global_pool().parallel_for(size_t(tasks), threads, [&](size_t task) {
    std::vector<double> rowc(2 * size_t(wc + 1));  // the vertically interpolated chroma row, + replicated column
    std::vector<double> scratch(5 * size_t(w));
    const int y0 = int(task) * kRowsPerTask, y1 = std::min(h, y0 + kRowsPerTask);
    for (int Y = y0; Y < y1; ++Y) {
      const int i = Y / 2;
      const int other = (Y & 1) ? std::min(i + 1, hc - 1) : std::max(i - 1, 0);
      for (int k = 0; k < 2; ++k) {
        const float* c = uv + size_t(k) * cplane;
        double* r = rowc.data() + size_t(k) * (wc + 1);
        for (int j = 0; j < wc; ++j) {
          const double ci = double(c[size_t(i) * wc + j]) - 128.0;
          const double co = double(c[size_t(other) * wc + j]) - 128.0;
          const double a = ci * 0.75;
          r[j] = (Y & 1) ? a + co * 0.25 : co * 0.25 + a;  // odd: ¾C[i] + ¼C[i+1]; even: ¼C[i−1] + ¾C[i]
        }
        r[wc] = r[wc - 1];
      }
      convert(y + size_t(Y) * w, rowc.data(), rowc.data() + (wc + 1), w, scratch.data(),
                  out + size_t(Y) * w * 3);
    }
  });
}

}  // namespace jpegai
