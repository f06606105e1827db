#include "colour.hpp"

#include <algorithm>
#include <cmath>
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

}  // namespace

void yuv420_to_rgb(const float* y, const float* uv, int h, int w, uint8_t* out, unsigned threads) {
  const int hc = (h + 1) / 2, wc = (w + 1) / 2;
  const size_t cplane = size_t(hc) * wc;
  const int tasks = (h + kRowsPerTask - 1) / kRowsPerTask;
  void (*const convert)(const float*, const double*, const double*, int, double*, uint8_t*) =
      cpu_features().baseline_only ? convert_row_baseline : convert_row;
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
