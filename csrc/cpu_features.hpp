// Run-time CPU feature detection.  The installed module is built for the baseline x86-64 (or the
// platform default); faster kernels live in their own translation units compiled with -mavx2 etc.
// and are only called when the running CPU has the feature.  Never -march=native in what ships.
#pragma once

#include <string>

namespace jpegai {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;      // F + BW + VL
  bool avx512vnni = false;  // and AVX512_VNNI (vpdpwssd in the int16 GEMM tiles, csrc/int16_gemm.hpp)
  // JPEGAI_FAST_SIMD=scalar: also the target_clones kernels run their baseline twin (the forced-baseline
  // switch: every SIMD kernel is compared with its scalar twin on one machine, as dav1d's checkasm does)
  bool baseline_only = false;
};

// Detected once.  JPEGAI_FAST_SIMD=scalar|avx2|avx512 in the environment caps what is used (for tests
// and benchmarks of the fallbacks; avx512: no VNNI).
const CpuFeatures& cpu_features();

std::string cpu_feature_string();

}  // namespace jpegai
