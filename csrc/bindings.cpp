// The one pybind11 file: numpy in, numpy/bytes out, GIL released around every heavy call, C++ errors
// translated to jpegai_fast.BitstreamError / LimitError (with .field) and ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "colour.hpp"
#include "container.hpp"
#include "cpu_features.hpp"
#include "errors.hpp"
#include "factorized_coder.hpp"
#include "gated_conv3x3.hpp"
#include "gated_upsampler.hpp"
#include "resau_block.hpp"
#include "output_head.hpp"
#include "shuffle_upsampler.hpp"
#include "hyper_scale_decoder.hpp"
#include "latent_decoder.hpp"
#include "mean_path.hpp"
#include "model_blob.hpp"
#include "rans.hpp"
#include "residual_coder.hpp"
#include "sigma_tables.hpp"
#include "thread_pool.hpp"

namespace py = pybind11;
using namespace jpegai;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

void raise_codec_error(const char* class_name, const CodecError& e) {
  py::object cls = py::module_::import("jpegai_fast.errors").attr(class_name);
  py::object instance = cls(std::string(e.what()), e.field());
  PyErr_SetObject(cls.ptr(), instance.ptr());
}

template <class T>
CArray<T> require(const py::array& a, const char* name) {
  if (!py::isinstance<CArray<T>>(a) || !(a.flags() & py::array::c_style))
    throw ArgumentError(std::string(name) + " must be a C-contiguous numpy array of " +
                        py::str(py::dtype::of<T>()).cast<std::string>());
  return py::reinterpret_borrow<CArray<T>>(a);
}

// A read-only view of a bytes-like object's logical bytes.  Non-contiguous buffers (numpy views with
// a step) are copied first: reading buf.ptr linearly would read the wrong bytes, or for a negative
// step, memory outside the object.
struct ByteView {
  py::object keep;
  py::buffer_info info;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

ByteView byte_view(const py::object& obj) {
  if (!PyObject_CheckBuffer(obj.ptr())) throw ArgumentError("data must be a bytes-like object");
  ByteView v;
  v.keep = obj;
  v.info = py::reinterpret_borrow<py::buffer>(obj).request();
  py::ssize_t expected = v.info.itemsize;
  bool contiguous = true;
  for (py::ssize_t d = v.info.ndim; d-- > 0;) {
    if (v.info.shape[d] > 1 && v.info.strides[d] != expected) contiguous = false;
    expected *= v.info.shape[d];
  }
  if (!contiguous) {
    v.keep = py::reinterpret_steal<py::object>(PyBytes_FromObject(obj.ptr()));
    if (!v.keep) throw py::error_already_set();
    v.info = py::reinterpret_borrow<py::buffer>(v.keep).request();
  }
  v.data = static_cast<const uint8_t*>(v.info.ptr);
  v.size = size_t(v.info.size * v.info.itemsize);
  return v;
}

py::bytes to_bytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

py::bytes encode_residual_py(const py::array& symbols_in, const py::array& index_in, uint32_t substreams,
                             unsigned threads) {
  auto symbols = require<int16_t>(symbols_in, "symbols");
  auto index = require<uint8_t>(index_in, "scale_index");
  if (symbols.ndim() != index.ndim() ||
      !std::equal(symbols.shape(), symbols.shape() + symbols.ndim(), index.shape()))
    throw ArgumentError("symbols and scale_index must have the same shape");
  std::vector<uint8_t> out;
  {
    py::gil_scoped_release release;
    out = encode_residual(symbols.data(), index.data(), size_t(symbols.size()), substreams, threads);
  }
  return to_bytes(out);
}

Kernel parse_kernel(const std::string& name) {
  if (name == "auto") return Kernel::kAuto;
  if (name == "scalar") return Kernel::kScalar;
  if (name == "avx2") return Kernel::kAvx2;
  throw ArgumentError("kernel must be 'auto', 'scalar' or 'avx2'");
}

CArray<int16_t> decode_residual_py(const py::object& data, const py::array& index_in, unsigned threads,
                                   const std::string& kernel_name) {
  const Kernel kernel = parse_kernel(kernel_name);
  auto index = require<uint8_t>(index_in, "scale_index");
  const ByteView buf = byte_view(data);
  CArray<int16_t> out(std::vector<py::ssize_t>(index.shape(), index.shape() + index.ndim()));
  {
    py::gil_scoped_release release;
    decode_residual(buf.data, buf.size, index.data(),
                    size_t(index.size()), out.mutable_data(), threads, kernel);
  }
  return out;
}

double information_bits_py(const py::array& symbols_in, const py::array& index_in) {
  auto symbols = require<int16_t>(symbols_in, "symbols");
  auto index = require<uint8_t>(index_in, "scale_index");
  if (symbols.size() != index.size()) throw ArgumentError("symbols and scale_index must have the same size");
  py::gil_scoped_release release;
  return residual_information_bits(symbols.data(), index.data(), size_t(symbols.size()));
}

IntConvLayer int_conv_layer(const py::array& w_in, const py::array& b_in, const py::array& s_in) {
  auto w = require<int8_t>(w_in, "weight");
  auto b = require<int32_t>(b_in, "bias");
  auto s = require<int8_t>(s_in, "shift");
  if (w.ndim() != 4 || w.shape(2) != w.shape(3)) throw ArgumentError("weight must be out x in x k x k");
  IntConvLayer l;
  l.out = int(w.shape(0));
  l.in = int(w.shape(1));
  l.k = int(w.shape(2));
  l.weight.assign(w.data(), w.data() + w.size());
  l.bias.assign(b.data(), b.data() + b.size());
  l.shift.assign(s.data(), s.data() + s.size());
  return l;
}

// Hands a vector's buffer to numpy without a copy (the array owns the vector; a full-size picture's
// latents are hundreds of MB, and a copy would double the decoder's peak memory).
// The input of a synthesis block: float32 [1, Cin, H, W] (nhwc: [1, H, W, Cin]), H, W >= 1.
CArray<float> block_input(const py::array& x_in, int cin, bool nhwc) {
  auto x = require<float>(x_in, "x");
  const int ca = nhwc ? 3 : 1, ha = nhwc ? 1 : 2, wa = nhwc ? 2 : 3;
  if (x.ndim() != 4 || x.shape(0) != 1 || x.shape(ca) != cin || x.shape(ha) < 1 || x.shape(wa) < 1)
    throw ArgumentError(std::string("x must be float32 ") + (nhwc ? "[1, H, W, Cin]" : "[1, Cin, H, W]") +
                        " with Cin = " + std::to_string(cin));
  return x;
}

// A caller's output buffer (C-contiguous float32 of exactly `shape`, not aliasing anything we read is the caller's
// promise), or a new array when None.
CArray<float> output_array(const py::object& out, const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) return CArray<float>(shape);
  auto a = require<float>(out.cast<py::array>(), "out");
  if (std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()) != shape || !a.writeable())
    throw ArgumentError("out must be a writeable float32 array of the output's shape");
  return a;
}

// run(x, threads, reference, nhwc_in, nhwc_out, out) of a synthesis block whose C++ run() takes (x, h, w, out,
// threads, reference, nhwc_in, nhwc_out) and writes `scale` times the input's height and width.
template <class Block>
void def_block_run(py::class_<Block>& cls, int scale) {
  cls.def("run", [scale](const Block& self, const py::array& x_in, unsigned threads, bool reference, bool nhwc_in,
                         bool nhwc_out, const py::object& out_in) {
        auto x = block_input(x_in, self.cin(), nhwc_in);
        const int h = int(x.shape(nhwc_in ? 1 : 2)), w = int(x.shape(nhwc_in ? 2 : 3));
        const py::ssize_t c = self.cout(), oh = py::ssize_t(scale) * h, ow = py::ssize_t(scale) * w;
        CArray<float> out = output_array(out_in, nhwc_out ? std::vector<py::ssize_t>{1, oh, ow, c}
                                                          : std::vector<py::ssize_t>{1, c, oh, ow});
        {
          py::gil_scoped_release release;
          self.run(x.data(), h, w, out.mutable_data(), threads, reference, nhwc_in, nhwc_out);
        }
        return out;
      },
      py::arg("x"), py::arg("threads") = 0, py::arg("reference") = false, py::arg("nhwc_in") = false,
      py::arg("nhwc_out") = false, py::arg("out") = py::none(),
      scale == 1 ? "x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout, H, W] (nhwc_out: [1, H, W, Cout]); "
                   "reference=True: the scalar definition; out: an array of that shape to write into (returned)."
                 : "x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout, 2H, 2W] (nhwc_out: [1, 2H, 2W, "
                   "Cout]); reference=True: the scalar definition; out: an array of that shape to write into "
                   "(returned).");
  cls.def_property_readonly("cin", &Block::cin);
  cls.def_property_readonly("cout", &Block::cout);
  cls.def_property_readonly("has_simd_kernel", &Block::has_simd_kernel);
}

template <class T>
CArray<T> move_to_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(v));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return CArray<T>(std::move(shape), owned->data(), free_when_done);
}

py::tuple size_tuple(const LatentSize& s) { return py::make_tuple(s.h, s.w); }

py::dict latents_to_dict(PictureLatents&& p, bool inspect) {
  py::dict d;
  d["header"] = p.header;
  d["display_hw"] = py::make_tuple(p.window.height, p.window.width);
  const char* names[2] = {"luma", "chroma"};
  py::dict y_hat, latent_hw, z_hw;
  const int components = p.header.chroma_format == 0 ? 1 : 2;  // 4:0:0: no chroma entries
  for (int c = 0; c < components; ++c) {
    ComponentLatents& L = p.comp[c];
    const py::ssize_t ch = L.channels;
    y_hat[names[c]] = move_to_array(std::move(L.y_hat), {ch, L.size.h, L.size.w});
    latent_hw[names[c]] = size_tuple(L.size);
    z_hw[names[c]] = py::make_tuple(L.size.z_h, L.size.z_w);
    if (inspect) {
      py::dict comp;
      comp["z"] = move_to_array(std::move(L.z), {ch, L.size.z_h, L.size.z_w});
      comp["log_sigma"] = move_to_array(std::move(L.log_sigma), {ch, L.size.h, L.size.w});
      comp["index"] = move_to_array(std::move(L.index), {ch, L.size.h, L.size.w});
      comp["residual"] = move_to_array(std::move(L.residual), {ch, L.size.h, L.size.w});
      d[names[c]] = comp;
    }
  }
  d["y_hat"] = y_hat;
  d["latent_hw"] = latent_hw;
  d["z_hw"] = z_hw;
  py::dict seconds;
  seconds["parse"] = p.seconds.parse;
  seconds["z"] = p.seconds.z;
  seconds["hyper_scale"] = p.seconds.hyper_scale;
  seconds["residual"] = p.seconds.residual;
  seconds["hyper_decoder"] = p.seconds.hyper_decoder;
  seconds["context"] = p.seconds.context;
  d["seconds"] = seconds;
  return d;
}

int component_index(int comp) {
  if (comp < 0 || comp > 1) throw ArgumentError("comp must be 0 (luma) or 1 (chroma)");
  return comp;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "jpegai_fast C++ core: container, rANS entropy coding (latent domain).";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const LimitError& e) {
      raise_codec_error("LimitError", e);
    } catch (const BitstreamError& e) {
      raise_codec_error("BitstreamError", e);
    } catch (const ArgumentError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.attr("NUM_LEVELS") = tables::kNumLevels;
  m.attr("SIGMA_MIN") = tables::kSigmaMin;
  m.attr("SIGMA_MAX") = tables::kSigmaMax;
  m.attr("LOG_SIGMA_FRAC_BITS") = tables::kLogSigmaFracBits;
  m.attr("PROB_BITS") = tables::kProbBits;
  m.attr("SKIP_INDEX") = tables::kSkipIndex;
  m.attr("MAX_SUBSTREAMS") = kMaxSubstreams;
  m.attr("RANS_LANES") = rans::kLanes;
  m.attr("FORMAT_VERSION") = kFormatVersion;
  m.attr("MAX_LOG_SIGMA") = kMaxLogSigma;
  m.attr("DEFAULT_MAX_PIXELS") = kDefaultMaxPixels;
  m.attr("MAX_METADATA_ENTRY") = kMaxMetadataEntry;

  m.def("sigma_levels", [] {
    CArray<double> out(tables::kNumLevels);
    for (int k = 0; k < tables::kNumLevels; ++k) out.mutable_data()[k] = tables::sigma_level(k);
    return out;
  }, "sigma_k for k = 0..63 (float64; informative, coding uses the frozen integer tables).");
  m.def("table_hash", &tables::table_hash, "FNV-1a 64 of the frozen residual tables.");
  m.def("table_radius", [](int k) {
    if (k < 0 || k >= tables::kNumLevels) throw ArgumentError("level out of range");
    return tables::residual_tables().radius(k);
  });
  m.def("table_escape_order", [](int k) {
    if (k < 0 || k >= tables::kNumLevels) throw ArgumentError("level out of range");
    return tables::residual_tables().escape_order(k);
  });
  m.def("table_freqs", [](int k) {
    if (k < 0 || k >= tables::kNumLevels) throw ArgumentError("level out of range");
    const auto& t = tables::residual_tables();
    const int count = 2 * t.radius(k) + 2;
    CArray<uint16_t> out(count);
    std::memcpy(out.mutable_data(), t.freqs(k), sizeof(uint16_t) * count);
    return out;
  }, "Frequencies of level k: symbols -R..R, then the escape (sum 4096).");

  m.def("scale_index_map", [](const py::array& s_in, const py::array& gain_in, int skip_below) {
    auto s = require<int32_t>(s_in, "s");
    auto gain = require<int32_t>(gain_in, "gain_log");
    if (s.ndim() < 1 || gain.ndim() != 1 || gain.shape(0) != s.shape(0))
      throw ArgumentError("s must be channels x ... and gain_log one value per channel");
    if (skip_below < 0 || skip_below > tables::kNumLevels) throw ArgumentError("skip_below must be in [0, 64]");
    CArray<uint8_t> out(std::vector<py::ssize_t>(s.shape(), s.shape() + s.ndim()));
    const size_t channels = size_t(s.shape(0)), plane = channels ? size_t(s.size()) / channels : 0;
    {
      py::gil_scoped_release release;
      tables::scale_index_map(s.data(), gain.data(), channels, plane, skip_below, out.mutable_data());
    }
    return out;
  }, py::arg("s"), py::arg("gain_log"), py::arg("skip_below"),
     "Per-position table index from Q7 log-sigma plus per-channel Q7 gain offsets; 255 below skip_below.");
  m.def("encode_residual", &encode_residual_py, py::arg("symbols"), py::arg("scale_index"),
        py::arg("substreams") = 1, py::arg("threads") = 0);
  m.def("decode_residual", &decode_residual_py, py::arg("data"), py::arg("scale_index"), py::arg("threads") = 0,
        py::arg("kernel") = "auto");
  m.def("residual_information_bits", &information_bits_py, py::arg("symbols"), py::arg("scale_index"));
  m.def("hardware_threads", &hardware_threads);
  m.def("cpu_features", &cpu_feature_string, "SIMD features the core detected and uses.");

  py::class_<FactorizedModel>(m, "FactorizedModel")
      .def(py::init([](const py::array& cdf_in, int offset) {
             auto cdf = require<uint16_t>(cdf_in, "cdf");
             if (cdf.ndim() != 2) throw ArgumentError("cdf must be 2-D: channels x (symbols + 1)");
             return FactorizedModel(cdf.data(), size_t(cdf.shape(0)), size_t(cdf.shape(1)) - 1, offset);
           }),
           py::arg("cdf"), py::arg("offset"))
      .def_property_readonly("channels", &FactorizedModel::channels)
      .def_property_readonly("symbols", &FactorizedModel::symbols)
      .def_property_readonly("offset", &FactorizedModel::offset)
      .def("encode", [](const FactorizedModel& self, const py::array& values_in, uint32_t substreams, unsigned threads) {
             auto values = require<int16_t>(values_in, "values");
             if (values.ndim() < 1 || size_t(values.shape(0)) != self.channels())
               throw ArgumentError("values must have shape (channels, ...)");
             const size_t plane = self.channels() ? size_t(values.size()) / self.channels() : 0;
             std::vector<uint8_t> out;
             {
               py::gil_scoped_release release;
               out = self.encode(values.data(), plane, substreams, threads);
             }
             return to_bytes(out);
           },
           py::arg("values"), py::arg("substreams") = 1, py::arg("threads") = 0)
      .def("decode", [](const FactorizedModel& self, const py::object& data, std::vector<py::ssize_t> plane_shape,
                        unsigned threads) {
             uint64_t plane = 1;
             for (py::ssize_t d : plane_shape) {
               if (d < 0) throw ArgumentError("negative dimension");
               plane *= uint64_t(d);
               if (plane > (uint64_t{1} << 32)) throw LimitError("hyper_latent", "plane too large");
             }
             std::vector<py::ssize_t> shape = {py::ssize_t(self.channels())};
             shape.insert(shape.end(), plane_shape.begin(), plane_shape.end());
             CArray<int16_t> out(shape);
             const ByteView buf = byte_view(data);
             {
               py::gil_scoped_release release;
               self.decode(buf.data, buf.size, size_t(plane),
                           out.mutable_data(), threads);
             }
             return out;
           },
           py::arg("data"), py::arg("plane_shape"), py::arg("threads") = 0);

  py::class_<HyperScaleDecoder>(m, "HyperScaleDecoder")
      .def(py::init([](const py::array& w1, const py::array& b1, const py::array& s1, const py::array& w2,
                       const py::array& b2, const py::array& s2, const py::array& w3, const py::array& b3,
                       const py::array& s3) {
             return HyperScaleDecoder(int_conv_layer(w1, b1, s1), int_conv_layer(w2, b2, s2),
                                      int_conv_layer(w3, b3, s3));
           }),
           py::arg("w1"), py::arg("b1"), py::arg("s1"), py::arg("w2"), py::arg("b2"), py::arg("s2"), py::arg("w3"),
           py::arg("b3"), py::arg("s3"))
      .def_property_readonly("channels", &HyperScaleDecoder::channels)
      .def("forward", [](const HyperScaleDecoder& self, const py::array& z_in, int hl, int wl, unsigned threads,
                         const std::string& kernel) {
             auto z = require<int16_t>(z_in, "z");
             if (z.ndim() != 3 || z.shape(0) != self.channels()) throw ArgumentError("z must be channels x H x W");
             const Kernel k = parse_kernel(kernel);
             CArray<int32_t> out({py::ssize_t(self.channels()), py::ssize_t(hl), py::ssize_t(wl)});
             {
               py::gil_scoped_release release;
               self.forward(z.data(), int(z.shape(1)), int(z.shape(2)), hl, wl, out.mutable_data(), threads,
                            k == Kernel::kScalar ? Kernel::kScalar : Kernel::kAuto);
             }
             return out;
           },
           py::arg("z"), py::arg("latent_h"), py::arg("latent_w"), py::arg("threads") = 0, py::arg("kernel") = "auto");

  py::class_<LatentModel>(m, "LatentModel")
      .def(py::init([](const py::object& blob) {
             const ByteView v = byte_view(blob);
             return std::make_unique<LatentModel>(ModelBlob(std::vector<uint8_t>(v.data, v.data + v.size)));
           }),
           py::arg("model_bin"), "The integer part of a model (model.bin bytes), parsed and checked once.")
      .def_property_readonly("skip_below", &LatentModel::skip_below)
      .def_property_readonly("rate_points", &LatentModel::rate_points)
      .def_property_readonly("z_offset", &LatentModel::z_offset)
      .def_property_readonly("model_id", &LatentModel::model_id)
      .def_property_readonly("channels", [](const LatentModel& self) {
        return py::make_tuple(self.component(0).channels, self.component(1).channels);
      })
      .def_property_readonly("grid", [](const LatentModel& self) {
        return py::make_tuple(self.component(0).grid, self.component(1).grid);
      })
      .def("y_frac", [](const LatentModel& self, int comp) { return self.mean_path().y_frac(component_index(comp)); },
           py::arg("comp"))
      .def("gain_q7", [](const LatentModel& self, int comp) {
             const ComponentModel& c = self.component(component_index(comp));
             CArray<int32_t> out({py::ssize_t(self.rate_points()), py::ssize_t(c.channels)});
             std::copy(c.gain_q7.begin(), c.gain_q7.end(), out.mutable_data());
             return out;
           }, py::arg("comp"), "Q7 log gain offsets [rate points, C].")
      .def("gain_f32", [](const LatentModel& self, int comp) {
             const ComponentModel& c = self.component(component_index(comp));
             CArray<float> out({py::ssize_t(self.rate_points()), py::ssize_t(c.channels)});
             std::copy(c.gain_f32.begin(), c.gain_f32.end(), out.mutable_data());
             return out;
           }, py::arg("comp"), "Trained float32 gains [rate points, C].")
      .def("latent_size", [](const LatentModel& self, int comp, uint32_t height, uint32_t width) {
             const LatentSize s = self.latent_size(component_index(comp), height, width);
             return py::make_tuple(s.h, s.w, s.z_h, s.z_w);
           }, py::arg("comp"), py::arg("height"), py::arg("width"), "-> (h, w, z_h, z_w) of a picture size.")
      .def("decode", [](const LatentModel& self, const py::object& data, uint64_t max_pixels, unsigned threads,
                        bool inspect) {
             const ByteView buf = byte_view(data);
             PictureLatents p;
             {
               py::gil_scoped_release release;
               p = decode_latents(self, buf.data, buf.size, max_pixels, threads, inspect);
             }
             return latents_to_dict(std::move(p), inspect);
           },
           py::arg("data"), py::arg("max_pixels") = kDefaultMaxPixels, py::arg("threads") = 0,
           py::arg("inspect") = false,
           "Codestream -> {'header', 'y_hat': {comp: float32 [C,h,w]}, 'latent_hw', 'z_hw', 'seconds'}: the whole "
           "latent domain in one call (seconds of the stages parse, z, hyper_scale, residual, hyper_decoder, "
           "context).  inspect=True adds per component z, log_sigma (Q7, gain applied), index and residual.")
      .def("prepare_encode", [](const LatentModel& self, uint32_t height, uint32_t width, const py::array& z_l,
                                const py::object& z_c, const py::array& y_l, const py::object& y_c, unsigned threads) {
             if (z_c.is_none() != y_c.is_none()) throw ArgumentError("z_chroma and y_chroma: both or neither");
             const int components = z_c.is_none() ? 1 : 2;  // None: monochrome (4:0:0)
             CArray<int16_t> z[2] = {require<int16_t>(z_l, "z_luma"),
                                     components == 2 ? require<int16_t>(z_c.cast<py::array>(), "z_chroma")
                                                     : CArray<int16_t>()};
             CArray<float> y[2] = {require<float>(y_l, "y_luma"), components == 2
                                                                     ? require<float>(y_c.cast<py::array>(), "y_chroma")
                                                                     : CArray<float>()};
             if (height < 1 || width < 1 || height > 65535 || width > 65535)
               throw ArgumentError("picture size out of range");
             for (int c = 0; c < components; ++c) {
               const LatentSize s = self.latent_size(c, height, width);
               const py::ssize_t C = self.component(c).channels;
               if (z[c].ndim() != 3 || z[c].shape(0) != C || z[c].shape(1) != s.z_h || z[c].shape(2) != s.z_w)
                 throw ArgumentError("z_hat does not match the picture size and the model");
               if (y[c].ndim() != 3 || y[c].shape(0) != C || y[c].shape(1) != s.h || y[c].shape(2) != s.w)
                 throw ArgumentError("y does not match the picture size and the model");
             }
             const int16_t* zp[2] = {z[0].data(), components == 2 ? z[1].data() : nullptr};
             const float* yp[2] = {y[0].data(), components == 2 ? y[1].data() : nullptr};
             py::gil_scoped_release release;
             return std::make_unique<PreparedLatents>(self, height, width, zp, yp, threads);
           },
           py::keep_alive<0, 1>(), py::arg("height"), py::arg("width"), py::arg("z_luma"), py::arg("z_chroma"),
           py::arg("y_luma"), py::arg("y_chroma"), py::arg("threads") = 0,
           "The encoder's rate-independent latent work (HSD, psi) for one picture; code() per rate trial.  "
           "z_chroma = y_chroma = None: monochrome (4:0:0), luma only.");

  py::class_<PreparedLatents>(m, "PreparedLatents")
      .def("code", [](const PreparedLatents& self, uint32_t rate_point, int32_t disp_luma, int32_t disp_chroma,
                      const py::object& gain_luma, const py::object& gain_chroma, uint32_t substreams,
                      unsigned threads) {
             const int32_t disp[2] = {disp_luma, disp_chroma};
             CArray<float> g[2];
             const float* gp[2] = {nullptr, nullptr};
             const py::object gains[2] = {gain_luma, gain_chroma};
             for (int c = 0; c < 2; ++c)
               if (!gains[c].is_none()) {
                 g[c] = require<float>(gains[c].cast<py::array>(), "gain");
                 if (g[c].ndim() != 1 || g[c].shape(0) != self.channels(c))
                   throw ArgumentError("gain must be one value per channel");
                 gp[c] = g[c].data();
               }
             PreparedLatents::Payloads p;
             {
               py::gil_scoped_release release;
               p = self.code(rate_point, disp, gp, substreams, threads);
             }
             return py::make_tuple(to_bytes(p.soz), to_bytes(p.sorp), to_bytes(p.sors));
           },
           py::arg("rate_point"), py::arg("disp_luma") = 0, py::arg("disp_chroma") = 0, py::arg("gain_luma") = py::none(),
           py::arg("gain_chroma") = py::none(), py::arg("substreams") = 1, py::arg("threads") = 0,
           "-> (SOZ, SORP, SORS) payloads at a rate point plus Q7 displacements; gains: float32 [C] per component "
           "(None: the trained gains, displacement 0 only).  Monochrome: SORS is empty and the chroma arguments "
           "are ignored.");

  m.def("yuv420_to_rgb", [](const py::array& y_in, const py::array& uv_in, unsigned threads) {
    auto y = require<float>(y_in, "y");
    auto uv = require<float>(uv_in, "uv");
    if (y.ndim() != 2 || uv.ndim() != 3 || uv.shape(0) != 2 || uv.shape(1) != (y.shape(0) + 1) / 2 ||
        uv.shape(2) != (y.shape(1) + 1) / 2 || y.shape(0) < 1 || y.shape(1) < 1)
      throw ArgumentError("planes must be Y [H, W] and UV [2, ceil(H/2), ceil(W/2)] (4:2:0)");
    CArray<uint8_t> out({y.shape(0), y.shape(1), py::ssize_t(3)});
    {
      py::gil_scoped_release release;
      yuv420_to_rgb(y.data(), uv.data(), int(y.shape(0)), int(y.shape(1)), out.mutable_data(), threads);
    }
    return out;
  }, py::arg("y"), py::arg("uv"), py::arg("threads") = 0,
     "Y'CbCr 4:2:0 float32 planes (0-255) -> uint8 RGB [H, W, 3], bit-identical to colour.yuv420_to_rgb.");

  py::class_<GatedUpsampler> up(m, "GatedUpsampler");
  up.def(py::init([](const py::array& weight_in, const py::array& bias_in, const py::object& gate_weight_in,
                       const py::object& gate_bias_in, float alpha) {
             auto wt = require<float>(weight_in, "weight");
             auto bias = require<float>(bias_in, "bias");
             if (wt.ndim() != 4 || wt.shape(2) != 4 || wt.shape(3) != 4)
               throw ArgumentError("weight must be [Cin, Cout, 4, 4] (ConvTranspose k4 s2 p1)");
             const py::ssize_t cin = wt.shape(0), cout = wt.shape(1);
             if (bias.ndim() != 1 || bias.shape(0) != cout) throw ArgumentError("bias must be [Cout]");
             if (gate_weight_in.is_none() != gate_bias_in.is_none())
               throw ArgumentError("gate_weight and gate_bias go together (both None: no gate)");
             if (gate_weight_in.is_none())
               return GatedUpsampler(wt.data(), bias.data(), nullptr, nullptr, int(cin), int(cout), alpha);
             auto gw = require<float>(gate_weight_in.cast<py::array>(), "gate_weight");
             auto gb = require<float>(gate_bias_in.cast<py::array>(), "gate_bias");
             if (gb.ndim() != 1 || gb.shape(0) != cout || gw.size() != cout * cout || gw.shape(0) != cout)
               throw ArgumentError("gate_bias must be [Cout] and gate_weight [Cout, Cout(, 1, 1)]");
             return GatedUpsampler(wt.data(), bias.data(), gw.data(), gb.data(), int(cin), int(cout), alpha);
           }),
           py::arg("weight"), py::arg("bias"), py::arg("gate_weight") = py::none(), py::arg("gate_bias") = py::none(),
           py::arg("alpha") = 0.0f,
           "ConvTranspose k4 s2 p1 + the synthesis gate u * (Wg . LeakyReLU(u) + bg), Winograd F(4x4, 2x2) per "
           "output phase (csrc/gated_upsampler.hpp); gate_weight None: the transposed convolution alone.");
  up.def_property_readonly("gated", &GatedUpsampler::gated);
  def_block_run(up, 2);

  py::class_<OutputHead> head(m, "OutputHead");
  head.def(py::init([](const py::array& weight_in, const py::object& bias_in, int block, float scale, float offset) {
             auto wt = require<float>(weight_in, "weight");
             if (wt.ndim() < 2 || wt.ndim() > 4 || (wt.ndim() == 4 && (wt.shape(2) != 1 || wt.shape(3) != 1)))
               throw ArgumentError("weight must be [Cout, Cin] or [Cout, Cin, 1, 1] (Conv 1x1)");
             const int cout = int(wt.shape(0)), cin = int(wt.shape(1));
             if (bias_in.is_none()) return OutputHead(wt.data(), nullptr, cin, cout, block, scale, offset);
             auto bias = require<float>(bias_in.cast<py::array>(), "bias");
             if (bias.ndim() != 1 || bias.shape(0) != cout) throw ArgumentError("bias must be [Cout]");
             return OutputHead(wt.data(), bias.data(), cin, cout, block, scale, offset);
           }),
           py::arg("weight"), py::arg("bias") = py::none(), py::arg("block") = 4, py::arg("scale") = 1.0f,
           py::arg("offset") = 0.0f,
           "The synthesis' output head: offset + scale * crop(DepthToSpace_CRD(Conv1x1(x) + bias, block)) "
           "(csrc/output_head.hpp).");
  head.def("run", [](const OutputHead& self, const py::array& x_in, int oh, int ow, unsigned threads, bool reference,
                     bool nhwc_in, const py::object& out_in) {
        auto x = block_input(x_in, self.cin(), nhwc_in);
        const int h = int(x.shape(nhwc_in ? 1 : 2)), w = int(x.shape(nhwc_in ? 2 : 3));
        if (oh < 1 || ow < 1 || oh > self.block() * h || ow > self.block() * w)
          throw ArgumentError("the crop must lie within the up-sampled picture");
        CArray<float> out = output_array(out_in, {1, self.channels(), oh, ow});
        {
          py::gil_scoped_release release;
          self.run(x.data(), h, w, oh, ow, out.mutable_data(), threads, reference, nhwc_in);
        }
        return out;
      },
      py::arg("x"), py::arg("oh"), py::arg("ow"), py::arg("threads") = 0, py::arg("reference") = false,
      py::arg("nhwc_in") = false, py::arg("out") = py::none(),
      "x float32 [1, Cin, H, W] (nhwc_in: [1, H, W, Cin]) -> [1, Cout / block², oh, ow], oh <= block H, "
      "ow <= block W; reference=True: the scalar definition; out: an array of that shape to write into (returned).");
  head.def_property_readonly("cin", &OutputHead::cin);
  head.def_property_readonly("cout", &OutputHead::cout);
  head.def_property_readonly("block", &OutputHead::block);
  head.def_property_readonly("channels", &OutputHead::channels);
  head.def_property_readonly("has_simd_kernel", &OutputHead::has_simd_kernel);

  py::class_<ShuffleUpsampler> shuffle(m, "ShuffleUpsampler");
  shuffle.def(py::init([](const py::array& weight_in, const py::array& bias_in) {
             auto wt = require<float>(weight_in, "weight");
             auto bias = require<float>(bias_in, "bias");
             if (wt.ndim() != 4 || wt.shape(0) % 4 || wt.shape(0) < 4 || wt.shape(2) != 2 || wt.shape(3) != 2)
               throw ArgumentError("weight must be [4 Cout, Cin, 2, 2] (Conv 2x2 before depth-to-space by 2)");
             if (bias.ndim() != 1 || bias.shape(0) != wt.shape(0)) throw ArgumentError("bias must be [4 Cout]");
             return ShuffleUpsampler(wt.data(), bias.data(), int(wt.shape(1)), int(wt.shape(0) / 4));
           }),
           py::arg("weight"), py::arg("bias"),
           "vr_bop's SOP up-sampler: pad bottom/right, Conv 2x2, depth-to-space by 2 (CRD) "
           "(csrc/shuffle_upsampler.hpp).");
  def_block_run(shuffle, 2);

  py::class_<ResAUBlock> resau(m, "ResAUBlock");
  resau.def(py::init([](const py::array& spatial_in, const py::array& mix_in) {
             auto sw = require<float>(spatial_in, "spatial_weight");
             auto mw = require<float>(mix_in, "mix_weight");
             if (sw.ndim() != 4 || sw.shape(1) != ResAUBlock::kGroup || sw.shape(2) != 3 || sw.shape(3) != 3)
               throw ArgumentError("spatial_weight must be [C, 16, 3, 3] (grouped Conv 3x3, 16 channels per group)");
             const py::ssize_t c = sw.shape(0);
             if (mw.shape(0) != c || mw.size() != c * c) throw ArgumentError("mix_weight must be [C, C(, 1, 1)]");
             return ResAUBlock(sw.data(), mw.data(), int(c));
           }),
           py::arg("spatial_weight"), py::arg("mix_weight"),
           "vr_bop's ResAU block x * (1 + Wmix . GConv3x3(ReLU6(x))) (csrc/resau_block.hpp).");
  def_block_run(resau, 1);

  py::class_<GatedConv3x3> conv3x3(m, "GatedConv3x3");
  conv3x3.def(py::init([](const py::array& weight_in, const py::array& bias_in, const py::object& gate_weight_in,
                       const py::object& gate_bias_in, float alpha, bool plain) {
             auto wt = require<float>(weight_in, "weight");
             auto bias = require<float>(bias_in, "bias");
             if (wt.ndim() != 4 || wt.shape(2) != 3 || wt.shape(3) != 3)
               throw ArgumentError("weight must be [Cout, Cin, 3, 3] (Conv 3x3)");
             const py::ssize_t cout = wt.shape(0), cin = wt.shape(1);
             if (bias.ndim() != 1 || bias.shape(0) != cout) throw ArgumentError("bias must be [Cout]");
             if (gate_weight_in.is_none() != gate_bias_in.is_none())
               throw ArgumentError("gate_weight and gate_bias go together (both None: the residual block)");
             if (plain && !gate_weight_in.is_none()) throw ArgumentError("plain: a convolution without a gate");
             if (gate_weight_in.is_none())
               return GatedConv3x3(wt.data(), bias.data(), nullptr, nullptr, int(cin), int(cout), alpha, plain);
             auto gw = require<float>(gate_weight_in.cast<py::array>(), "gate_weight");
             auto gb = require<float>(gate_bias_in.cast<py::array>(), "gate_bias");
             if (gb.ndim() != 1 || gb.shape(0) != cout || gw.size() != cout * cout || gw.shape(0) != cout)
               throw ArgumentError("gate_bias must be [Cout] and gate_weight [Cout, Cout(, 1, 1)]");
             return GatedConv3x3(wt.data(), bias.data(), gw.data(), gb.data(), int(cin), int(cout), alpha);
           }),
           py::arg("weight"), py::arg("bias"), py::arg("gate_weight") = py::none(), py::arg("gate_bias") = py::none(),
           py::arg("alpha") = 0.0f, py::arg("plain") = false,
           "Conv 3x3 pad 1 + the synthesis gate u * (Wg . LeakyReLU(u) + bg), Winograd F(4x4, 3x3) "
           "(csrc/gated_conv3x3.hpp); gate_weight None: the head's residual block x + ReLU(conv(x) + bias), or "
           "with plain=True the convolution alone, conv(x) + bias.");
  conv3x3.def_property_readonly("residual", &GatedConv3x3::residual);
  conv3x3.def_property_readonly("gated", &GatedConv3x3::gated);
  def_block_run(conv3x3, 1);

  m.def("inverse_gain", [](int32_t t) {
    const InverseGain g = inverse_gain(t);
    return py::make_tuple(g.mantissa, g.exponent);
  }, py::arg("t"), "1/g of a Q7 log gain offset t as (m, n): 1/g = m * 2^(n - 30), the integer exp2 of the mean path.");

  py::class_<MeanLayer>(m, "MeanLayer")
      .def(py::init([](const py::object& blob, const std::string& prefix, int in_channels) {
             const ByteView v = byte_view(blob);
             return load_mean_layer(ModelBlob(std::vector<uint8_t>(v.data, v.data + v.size)), prefix, in_channels, -1);
           }),
           py::arg("model_bin"), py::arg("prefix"), py::arg("in_channels"),
           "One layer of the fixed-point mean path (sections <prefix>.{weight,bias,shift,meta}): a test surface.")
      .def_property_readonly("out_channels", [](const MeanLayer& L) { return L.out; })
      .def("forward", [](const MeanLayer& L, const py::array& x_in, int out_h, int out_w, unsigned threads,
                         const std::string& kernel) {
             const Kernel k = parse_kernel(kernel);
             auto x = require<int16_t>(x_in, "x");
             if (x.ndim() != 3) throw ArgumentError("x must be H x W x channels (HWC)");
             Tensor16 t;
             t.h = int(x.shape(0));
             t.w = int(x.shape(1));
             t.c = int(x.shape(2));
             t.v.assign(x.data(), x.data() + x.size());
             Tensor16 y;
             {
               py::gil_scoped_release release;
               y = run_mean_layer(L, t, out_h, out_w, threads, k);
             }
             return move_to_array(std::move(y.v), {y.h, y.w, y.c});
           },
           py::arg("x"), py::arg("out_h"), py::arg("out_w"), py::arg("threads") = 0, py::arg("kernel") = "auto",
           "x int16 [H, W, in] (HWC) -> int16 [out_h, out_w, out]; kernel as in MeanPath.hyper_decoder.");

  py::class_<MeanPath>(m, "MeanPath")
      .def(py::init([](const py::object& blob, int luma_channels, int chroma_channels) {
             const ByteView v = byte_view(blob);
             return std::make_unique<MeanPath>(ModelBlob(std::vector<uint8_t>(v.data, v.data + v.size)),
                                               luma_channels, chroma_channels);
           }),
           py::arg("model_bin"), py::arg("luma_channels"), py::arg("chroma_channels"),
           "The fixed-point mean path of a model (model.bin sections mean.*).")
      .def("y_frac", &MeanPath::y_frac, py::arg("comp"))
      .def("hyper_decoder", [](const MeanPath& self, int comp, const py::array& z_in, int hl, int wl, unsigned threads,
                               const std::string& kernel) {
             if (comp < 0 || comp > 1) throw ArgumentError("comp must be 0 (luma) or 1 (chroma)");
             const Kernel k = parse_kernel(kernel);
             auto z = require<int16_t>(z_in, "z");
             if (z.ndim() != 3) throw ArgumentError("z must be channels x H x W");
             Tensor16 psi;
             {
               py::gil_scoped_release release;
               psi = self.hyper_decoder(comp, z.data(), int(z.shape(1)), int(z.shape(2)), hl, wl, threads, k);
             }
             return move_to_array(std::move(psi.v), {psi.h, psi.w, psi.c});
           },
           py::arg("comp"), py::arg("z"), py::arg("latent_h"), py::arg("latent_w"), py::arg("threads") = 0,
           py::arg("kernel") = "auto",
           "z_hat int16 [C,hz,wz] -> psi int16 [ceil(Hl/2), ceil(Wl/2), 4C] (HWC, opaque to Python).  kernel: "
           "'auto' (the CPU's best GEMM tiles), 'avx2' (capped at AVX2), 'scalar' (the plain C++ tiles); all equal.")
      .def("reconstruct", [](const MeanPath& self, int comp, const py::array& psi_in, const py::array& index_in,
                             const py::array& offsets_in, const py::object& residual_in, const py::object& y_in,
                             const py::object& gain_in, unsigned threads, const std::string& kernel) {
             if (comp < 0 || comp > 1) throw ArgumentError("comp must be 0 (luma) or 1 (chroma)");
             const Kernel k = parse_kernel(kernel);
             auto psi = require<int16_t>(psi_in, "psi");
             auto index = require<uint8_t>(index_in, "index");
             auto offsets = require<int32_t>(offsets_in, "offsets");
             if (psi.ndim() != 3 || index.ndim() != 3) throw ArgumentError("psi must be H x W x C, index C x H x W");
             const py::ssize_t C = index.shape(0), hl = index.shape(1), wl = index.shape(2);
             if (offsets.ndim() != 1 || offsets.shape(0) != C) throw ArgumentError("offsets must have one entry per channel");
             Tensor16 t;
             t.h = int(psi.shape(0));
             t.w = int(psi.shape(1));
             t.c = int(psi.shape(2));
             t.v.assign(psi.data(), psi.data() + psi.size());
             const bool encoder = !y_in.is_none();
             CArray<int16_t> residual, residual_out;
             CArray<float> y, gain;
             if (encoder) {
               y = require<float>(y_in.cast<py::array>(), "y");
               gain = require<float>(gain_in.cast<py::array>(), "gain");
               if (y.ndim() != 3 || y.shape(0) != C || y.shape(1) != hl || y.shape(2) != wl || gain.size() != C)
                 throw ArgumentError("y must match index, gain have one entry per channel");
               residual_out = CArray<int16_t>({C, hl, wl});
             } else {
               residual = require<int16_t>(residual_in.cast<py::array>(), "residual");
               if (residual.ndim() != 3 || residual.shape(0) != C || residual.shape(1) != hl || residual.shape(2) != wl)
                 throw ArgumentError("residual must match index");
             }
             CArray<int16_t> y_hat({C, hl, wl});
             {
               py::gil_scoped_release release;
               self.reconstruct(comp, t, index.data(), offsets.data(), int(hl), int(wl),
                                encoder ? nullptr : residual.data(), encoder ? y.data() : nullptr,
                                encoder ? gain.data() : nullptr, encoder ? residual_out.mutable_data() : nullptr,
                                y_hat.mutable_data(), threads, k);
             }
             if (encoder) return py::object(py::make_tuple(y_hat, residual_out));
             return py::object(py::make_tuple(y_hat, py::none()));
           },
           py::arg("comp"), py::arg("psi"), py::arg("index"), py::arg("offsets"), py::arg("residual") = py::none(),
           py::arg("y") = py::none(), py::arg("gain") = py::none(), py::arg("threads") = 0, py::arg("kernel") = "auto",
           "-> (y_hat int16 [C,Hl,Wl] at y_frac(comp), residual int16 (encoder) or None).  Decoder: residual; "
           "encoder: y (float32) and gain (float32 [C]).  kernel as in hyper_decoder.");

  py::class_<PictureHeader>(m, "PictureHeader")
      .def(py::init<>())
      .def_readwrite("width", &PictureHeader::width)
      .def_readwrite("height", &PictureHeader::height)
      .def_readwrite("bit_depth", &PictureHeader::bit_depth)
      .def_readwrite("chroma_format", &PictureHeader::chroma_format)
      .def_readwrite("colour_transform", &PictureHeader::colour_transform)
      .def_readwrite("model_id", &PictureHeader::model_id)
      .def_readwrite("operating_point", &PictureHeader::operating_point)
      .def_readwrite("rate_point", &PictureHeader::rate_point)
      .def_readwrite("gain_log_luma", &PictureHeader::gain_log_luma)
      .def_readwrite("gain_log_chroma", &PictureHeader::gain_log_chroma)
      .def_readwrite("latent_channels_luma", &PictureHeader::latent_channels_luma)
      .def_readwrite("latent_channels_chroma", &PictureHeader::latent_channels_chroma)
      .def_readwrite("coded_channels_luma", &PictureHeader::coded_channels_luma)
      .def_readwrite("coded_channels_chroma", &PictureHeader::coded_channels_chroma)
      .def_readwrite("tile_size", &PictureHeader::tile_size)
      .def_readwrite("tile_overlap", &PictureHeader::tile_overlap);

  m.def("write_codestream", [](const PictureHeader& h, const std::vector<std::pair<uint16_t, py::bytes>>& segs) {
    std::vector<std::pair<uint16_t, std::vector<uint8_t>>> segments;
    for (const auto& [marker, payload] : segs) {
      const std::string s = payload;
      segments.emplace_back(marker, std::vector<uint8_t>(s.begin(), s.end()));
    }
    return to_bytes(write_codestream(h, segments));
  }, py::arg("header"), py::arg("segments"));
  m.def("parse_codestream", [](const py::object& data, uint64_t max_pixels) {
    const ByteView buf = byte_view(data);
    const uint8_t* bytes = buf.data;
    Codestream cs;
    {
      py::gil_scoped_release release;
      cs = parse_codestream(bytes, buf.size, max_pixels);
    }
    py::dict payloads;
    for (const auto& [marker, span] : cs.payloads)
      payloads[py::int_(marker)] = py::bytes(reinterpret_cast<const char*>(bytes + span.first), span.second);
    return py::make_tuple(cs.header, payloads);
  }, py::arg("data"), py::arg("max_pixels") = kDefaultMaxPixels);
  m.def("write_display_window", [](const PictureHeader& h, uint32_t width, uint32_t height) {
    return to_bytes(write_display_window(h, DisplayWindow{width, height}));
  }, py::arg("header"), py::arg("width"), py::arg("height"),
     "The DWS payload: the decoder crops the coded picture to its top-left width x height (ValueError if outside).");
  m.def("parse_display_window", [](const py::object& data, const PictureHeader& h) {
    const ByteView buf = byte_view(data);
    const DisplayWindow w = parse_display_window(buf.data, buf.size, h);
    return py::make_tuple(w.width, w.height);
  }, py::arg("data"), py::arg("header"), "DWS payload -> (width, height); BitstreamError (field 'DWS') if malformed.");
  m.def("write_metadata", [](const std::vector<std::pair<int, py::bytes>>& entries) {
    std::vector<std::pair<uint8_t, std::vector<uint8_t>>> in;
    for (const auto& [type, bytes] : entries) {
      if (type < 0 || type > 255) throw ArgumentError("MDS: unknown metadata type " + std::to_string(type));
      const std::string v = bytes;
      in.emplace_back(uint8_t(type), std::vector<uint8_t>(v.begin(), v.end()));
    }
    return to_bytes(write_metadata(in));
  }, py::arg("entries"), "[(type, bytes)] (1 EXIF, 2 ICC profile, 3 XMP) -> the MDS payload (ValueError if invalid).");
  m.def("parse_metadata", [](const py::object& data) {
    const ByteView buf = byte_view(data);
    const auto entries = parse_metadata(buf.data, buf.size);
    py::dict out;
    for (const auto& [type, span] : entries)
      out[py::int_(type)] = py::bytes(reinterpret_cast<const char*>(buf.data + span.first), span.second);
    return out;
  }, py::arg("data"), "MDS payload -> {type: bytes}; BitstreamError (field 'MDS') if malformed.");
}
