// Reader of model.bin, the integer part of a model directory (spec: docs/model_format.md).
//
// Read me first:
//  * A model file is input like any other: magic, version, total size, CRC-32, every section's
//    dtype, shape, alignment and bounds are checked before anything is used (ModelError is an
//    ArgumentError: a bad model is the caller's problem, not a corrupt picture stream).
//  * Values are little-endian on disk and copied out explicitly, so big-endian hosts read them too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace jpegai {

enum class BlobType : uint32_t { kInt8 = 1, kUInt8 = 2, kInt16 = 3, kUInt16 = 4, kInt32 = 5, kUInt32 = 6, kFloat32 = 7 };

struct BlobSection {
  BlobType type;
  std::vector<uint32_t> shape;
  size_t offset = 0, nbytes = 0;
  size_t count() const;
};

class ModelBlob {
 public:
  explicit ModelBlob(std::vector<uint8_t> bytes);

  bool has(const std::string& name) const { return sections_.count(name) != 0; }
  // The section's values, checked for type and (if non-empty) shape.
  std::vector<int8_t> int8(const std::string& name, const std::vector<uint32_t>& shape = {}) const;
  std::vector<uint16_t> uint16(const std::string& name, const std::vector<uint32_t>& shape = {}) const;
  std::vector<int32_t> int32(const std::string& name, const std::vector<uint32_t>& shape = {}) const;
  std::vector<float> float32(const std::string& name, const std::vector<uint32_t>& shape = {}) const;
  const BlobSection& section(const std::string& name) const;

 private:
  const BlobSection& typed(const std::string& name, BlobType type, const std::vector<uint32_t>& shape) const;
  std::vector<uint8_t> bytes_;
  std::map<std::string, BlobSection> sections_;
};

}  // namespace jpegai
