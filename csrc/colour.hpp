// Colour stage of the decoder: Y'CbCr 4:2:0 planes (float32, 0-255) -> 8-bit RGB, in C++ so a decode needs no
// numpy float64 picture-size temporaries (issue 12).
//
// Read me first:
//  * Bit-exact with the numpy definition src/jpegai_fast/colour.py yuv420_to_rgb (kept as the test oracle): the
//    same float64 operations in the same order per sample — chroma rows ¼C[i−1] + ¾C[i] / ¾C[i] + ¼C[i+1]
//    (edges replicated), columns C[j] / ½(C[j] + C[j+1]), r = y + CR_DIV·cr, b = y + CB_DIV·cb,
//    g = ((y − KR·r) − KB·b) / KG, round half to even, clamp to [0, 255].  The file is compiled with
//    -ffp-contract=off: a fused multiply-add would round differently.
//  * Rows are independent: threaded by row blocks, identical for any thread count.
//  * Row kernels: an AVX2 one (16 pixels per step, float64 lanes, pshufb interleave) where the CPU has AVX2, else
//    the compiler's target_clones of the plain loops; JPEGAI_FAST_SIMD=scalar runs the baseline twin.  All of
//    them equal the numpy definition byte for byte (tests/test_colour.py, tests/test_forced_baseline.py).
#pragma once

#include <cstdint>

namespace jpegai {

// y: h x w, uv: 2 x ceil(h/2) x ceil(w/2) (planes Cb then Cr), out: h x w x 3 (RGB interleaved).
void yuv420_to_rgb(const float* y, const float* uv, int h, int w, uint8_t* out, unsigned threads);

}  // namespace jpegai
