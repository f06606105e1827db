// AVX2 rANS decoding of residual runs: the 8 lanes of a run in one register.
//
// Read me first:
//  * Must decode exactly what the scalar reference (substream_coder.hpp, decode_symbols_scalar)
//    decodes, leaving the cursor in the same state; tests compare the two bit for bit
//    (decode_residual(..., kernel="scalar"|"avx2")).
//  * Compiled for baseline x86-64 like every other file: only the kernel carries
//    __attribute__((target("avx2"))), so no AVX2 instruction can leak into shared inline code (the
//    ODR trap of compiling a whole file with -mavx2).  Called only when cpu_features().avx2.
//  * It consumes coded symbols 8 at a time (one per lane) while at least 16 word bytes remain, so its
//    unaligned 16-byte word load never leaves the run; the scalar decoder does the rest.
//  * Renormalisation: lanes whose state fell below L take the next words of the shared stream in
//    lane order; a 256-entry table maps the "needs a word" mask to a permutation of 8 loaded words.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitio.hpp"
#include "substream_coder.hpp"

namespace jpegai::avx2 {

// Escape callback: the value of the escaped symbol at position p, read from the bypass bits.
using EscapeReader = int (*)(const void* ctx, size_t p, BitReader& bypass);

// Advances `c` over as many groups of 8 coded symbols as it safely can.  `decode_table` is the
// 64 x 4096 packed entry table, `index` the scale indices (255 = skip), `bias` the symbol bias.
void decode_residual_groups(const uint32_t* decode_table, const uint8_t* index, int bias, detail::RunCursor& c,
                            size_t coded, size_t n, BitReader& bypass, EscapeReader escape, const void* ctx,
                            int16_t* out);

}  // namespace jpegai::avx2
