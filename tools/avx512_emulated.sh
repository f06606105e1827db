#!/usr/bin/env bash
# Runs tests against a build of the core whose AVX-512 / AVX512_VNNI tiles are emulated by SIMDe, on a CPU
# without AVX-512 (the shipped build and the normal test run can only reach the AVX2 and baseline tiles there).
#
#   tools/avx512_emulated.sh [pytest args]        default: the tests of the int16 GEMM users
#
# Needs SIMDe headers (apt-get install libsimde-dev), cmake, pybind11.  BUILD (default /tmp/jpegai-avx512-emu)
# holds the build and a package directory that shadows the editable install; cpu_features() says "avx512" there.
# JPEGAI_FAST_SIMD=avx512 in the environment selects the AVX-512 tiles without VNNI.  Slow: SIMDe's generic code.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/jpegai-avx512-emu}
[ -d /usr/include/simde ] || { echo "needs SIMDe headers: apt-get install libsimde-dev" >&2; exit 2; }
cmake -S "$ROOT" -B "$BUILD/build" -DSKBUILD=ON -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python)" \
  -DCMAKE_CXX_FLAGS="-include $ROOT/tools/simde_avx512_shim.h" > "$BUILD.cmake.log"
cmake --build "$BUILD/build" -j"${JOBS:-2}" --target _core > "$BUILD.build.log"
PKG="$BUILD/pkg/jpegai_fast"
rm -rf "$BUILD/pkg" && mkdir -p "$PKG"
for f in "$ROOT"/src/jpegai_fast/*; do case "$f" in *.so) ;; *) ln -s "$f" "$PKG/" ;; esac; done
cp "$BUILD"/build/_core*.so "$PKG/"
cat > "$BUILD/pkg/sitecustomize.py" <<'PY'
# drop the editable install's import hook: jpegai_fast comes from this directory (the emulated build)
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower() and "skbc" not in repr(f).lower()]
PY
export PYTHONPATH="$BUILD/pkg${PYTHONPATH:+:$PYTHONPATH}"
python -c "from jpegai_fast import _core; assert _core.__file__.startswith('$BUILD'), _core.__file__; print('core', _core.__file__, _core.cpu_features())"
cd "$ROOT"
if [ $# -eq 0 ]; then
  set -- -q -p no:cacheprovider tests/test_mean_gemm.py tests/test_hyper_scale_decoder.py tests/test_mean_path.py \
    tests/test_mean_topology.py
fi
exec python -m pytest "$@"
