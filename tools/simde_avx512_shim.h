// Test-only (tools/avx512_emulated.sh): force-included into every translation unit of an emulated build, it
// maps the AVX-512 intrinsics of the core (csrc/int16_gemm.hpp tiles, their epilogues) onto SIMDe's portable
// implementations (apt: libsimde-dev), so that the AVX-512 / AVX512_VNNI tile sets run, and are tested bit for
// bit, on a CPU without AVX-512.  It also makes cpu_features() report every feature and compiles the
// AVX-512 functions without their target attributes (else GCC would emit real AVX-512 instructions for the
// emulation).  Never part of a shipped build.
#pragma once
#ifdef __cplusplus
#include <cstdint>
#include <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
// missing (or, for _mm512_madd_epi16, mis-aliased) in SIMDe 0.7.4
static inline simde__m256i emu_cvtepi32_epi16(simde__m512i a) {
  int32_t t[16]; int16_t r[16];
  simde_mm512_storeu_si512(t, a);
  for (int i = 0; i < 16; ++i) r[i] = int16_t(t[i]);
  return simde_mm256_loadu_si256(r);
}
static inline void emu_mask_storeu_epi16(void* p, uint16_t k, simde__m256i a) {
  int16_t t[16];
  simde_mm256_storeu_si256(t, a);
  for (int i = 0; i < 16; ++i) if ((k >> i) & 1) static_cast<int16_t*>(p)[i] = t[i];
}
static inline void emu_mask_storeu_epi32(void* p, uint8_t k, simde__m128i a) {
  int32_t t[4];
  simde_mm_storeu_si128(t, a);
  for (int i = 0; i < 4; ++i) if ((k >> i) & 1) static_cast<int32_t*>(p)[i] = t[i];
}
static inline simde__m512i emu_srav_epi32(simde__m512i a, simde__m512i n) {
  int32_t x[16], c[16];
  simde_mm512_storeu_si512(x, a);
  simde_mm512_storeu_si512(c, n);
  for (int i = 0; i < 16; ++i) x[i] = (c[i] < 0 || c[i] > 31) ? (x[i] < 0 ? -1 : 0) : (x[i] >> c[i]);
  return simde_mm512_loadu_si512(x);
}
static inline simde__m512i emu_srai_epi32(simde__m512i a, int n) {
  int32_t x[16];
  simde_mm512_storeu_si512(x, a);
  for (int i = 0; i < 16; ++i) x[i] = x[i] >> (n > 31 ? 31 : n);
  return simde_mm512_loadu_si512(x);
}
#undef _mm512_srav_epi32
#define _mm512_srav_epi32(a, n) emu_srav_epi32(a, n)
#undef _mm512_srai_epi32
#define _mm512_srai_epi32(a, n) emu_srai_epi32(a, n)
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16(a) emu_cvtepi32_epi16(a)
#undef _mm256_mask_storeu_epi16
#define _mm256_mask_storeu_epi16(p, k, a) emu_mask_storeu_epi16(p, k, a)
#undef _mm_mask_storeu_epi32
#define _mm_mask_storeu_epi32(p, k, a) emu_mask_storeu_epi32(p, k, a)
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
#define __builtin_cpu_supports(x) 1
#define JPEGAI_TARGET_AVX512
#define JPEGAI_TARGET_AVX512VNNI
#endif
