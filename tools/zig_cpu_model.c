/* Run-time CPU feature detection for the zig-built wheel (tools/build_wheel.py links this object into _core).
 *
 * Why: clang compiles __builtin_cpu_supports() and the resolvers of target_clones functions into reads of
 * __cpu_model / __cpu_features2 after a call to __cpu_indicator_init(); the compiler runtime defines them
 * (libgcc for gcc builds).  zig's compiler_rt defines them only as a stub (weak symbols that report no
 * feature at all), so a zig build would run the baseline kernels everywhere: bit-identical, but 2.5-4.5x slower
 * in the latent domain.  These strong definitions replace the stub.
 *
 * Layout (the ABI shared by libgcc and compiler-rt): feature k < 32 is bit k of __cpu_model.features[0],
 * feature k >= 32 is bit k % 32 of __cpu_features2[k / 32 - 1]; the numbers are those of the
 * processor_features enumeration both runtimes use.  Only the features below are ever reported (any other
 * query answers "no": a slower kernel, never a wrong one); tools/build_wheel.py checks the answers against
 * /proc/cpuinfo (and the host compiler's runtime, when there is one) on the build machine.
 *
 * Runs inside ifunc resolvers, before the library's relocations are done: no libc call, only cpuid/xgetbv.
 */

enum {
  F_CMOV = 0, F_MMX = 1, F_POPCNT = 2, F_SSE = 3, F_SSE2 = 4, F_SSE3 = 5, F_SSSE3 = 6, F_SSE4_1 = 7, F_SSE4_2 = 8,
  F_AVX = 9, F_AVX2 = 10, F_FMA = 14, F_AVX512F = 15, F_BMI = 16, F_BMI2 = 17, F_AVX512VL = 20, F_AVX512BW = 21,
  F_AVX512DQ = 22, F_AVX512CD = 23, F_CMPXCHG16B = 46, F_F16C = 49, F_LAHF_LM = 54, F_LZCNT = 57, F_MOVBE = 58,
  F_X86_64_BASELINE = 95, F_X86_64_V2 = 96, F_X86_64_V3 = 97, F_X86_64_V4 = 98
};
enum { VENDOR_INTEL = 1, VENDOR_AMD = 2, VENDOR_OTHER = 3 };

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN struct {
  unsigned int vendor, type, subtype;
  unsigned int features[1];
} __cpu_model;
HIDDEN unsigned int __cpu_features2[4];

static void cpuid(unsigned int leaf, unsigned int sub, unsigned int r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static unsigned int xcr0_low(void) {
  unsigned int lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  return lo;
}

#define BIT(x, n) (((x) >> (n)) & 1u)

HIDDEN int __cpu_indicator_init(void) {
  if (__cpu_model.vendor != 0) return 0; /* done before (every call computes the same values) */
  unsigned int r[4], f[4] = {0, 0, 0, 0}; /* features 0..127 */
#define SET(k) (f[(k) / 32] |= 1u << ((k) % 32))
#define HAS(k) BIT(f[(k) / 32], (k) % 32)
  cpuid(0, 0, r);
  const unsigned int max_leaf = r[0];
  unsigned int vendor = VENDOR_OTHER;
  if (r[1] == 0x756e6547u && r[3] == 0x49656e69u && r[2] == 0x6c65746eu) vendor = VENDOR_INTEL; /* GenuineIntel */
  if (r[1] == 0x68747541u && r[3] == 0x69746e65u && r[2] == 0x444d4163u) vendor = VENDOR_AMD;   /* AuthenticAMD */
  int os_ymm = 0, os_zmm = 0;
  if (max_leaf >= 1) {
    cpuid(1, 0, r);
    const unsigned int c = r[2], d = r[3];
    if (BIT(c, 27)) { /* OSXSAVE: the OS saves the register state that XCR0 names */
      const unsigned int xcr0 = xcr0_low();
      os_ymm = (xcr0 & 0x6u) == 0x6u;          /* XMM, YMM */
      os_zmm = os_ymm && (xcr0 & 0xe0u) == 0xe0u; /* + opmask, ZMM_Hi256, Hi16_ZMM */
    }
    if (BIT(d, 15)) SET(F_CMOV);
    if (BIT(d, 23)) SET(F_MMX);
    if (BIT(d, 25)) SET(F_SSE);
    if (BIT(d, 26)) SET(F_SSE2);
    if (BIT(c, 0)) SET(F_SSE3);
    if (BIT(c, 9)) SET(F_SSSE3);
    if (BIT(c, 19)) SET(F_SSE4_1);
    if (BIT(c, 20)) SET(F_SSE4_2);
    if (BIT(c, 23)) SET(F_POPCNT);
    if (BIT(c, 13)) SET(F_CMPXCHG16B);
    if (BIT(c, 22)) SET(F_MOVBE);
    if (os_ymm && BIT(c, 28)) SET(F_AVX);
    if (os_ymm && BIT(c, 12)) SET(F_FMA);
    if (os_ymm && BIT(c, 29)) SET(F_F16C);
  }
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    const unsigned int b = r[1];
    if (BIT(b, 3)) SET(F_BMI);
    if (BIT(b, 8)) SET(F_BMI2);
    if (os_ymm && BIT(b, 5)) SET(F_AVX2);
    if (os_zmm && BIT(b, 16)) SET(F_AVX512F);
    if (os_zmm && BIT(b, 17)) SET(F_AVX512DQ);
    if (os_zmm && BIT(b, 28)) SET(F_AVX512CD);
    if (os_zmm && BIT(b, 30)) SET(F_AVX512BW);
    if (os_zmm && BIT(b, 31)) SET(F_AVX512VL);
  }
  cpuid(0x80000000u, 0, r);
  if (r[0] >= 0x80000001u) {
    cpuid(0x80000001u, 0, r);
    if (BIT(r[2], 0)) SET(F_LAHF_LM);
    if (BIT(r[2], 5)) SET(F_LZCNT);
  }
  /* the x86-64 psABI micro-architecture levels */
  const int base = HAS(F_CMOV) && HAS(F_MMX) && HAS(F_SSE) && HAS(F_SSE2);
  const int v2 = base && HAS(F_CMPXCHG16B) && HAS(F_LAHF_LM) && HAS(F_POPCNT) && HAS(F_SSE3) && HAS(F_SSSE3) &&
                 HAS(F_SSE4_1) && HAS(F_SSE4_2);
  const int v3 = v2 && HAS(F_AVX) && HAS(F_AVX2) && HAS(F_BMI) && HAS(F_BMI2) && HAS(F_F16C) && HAS(F_FMA) &&
                 HAS(F_LZCNT) && HAS(F_MOVBE);
  const int v4 = v3 && HAS(F_AVX512F) && HAS(F_AVX512BW) && HAS(F_AVX512CD) && HAS(F_AVX512DQ) && HAS(F_AVX512VL);
  if (base) SET(F_X86_64_BASELINE);
  if (v2) SET(F_X86_64_V2);
  if (v3) SET(F_X86_64_V3);
  if (v4) SET(F_X86_64_V4);
  __cpu_model.features[0] = f[0];
  __cpu_features2[0] = f[1];
  __cpu_features2[1] = f[2];
  __cpu_features2[2] = f[3];
  __cpu_model.vendor = vendor; /* last: marks the data complete */
  return 0;
}

/* as the compiler runtimes do: plain __builtin_cpu_supports() calls work without __builtin_cpu_init() */
__attribute__((constructor(101))) static void cpu_indicator_ctor(void) { __cpu_indicator_init(); }
