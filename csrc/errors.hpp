// Error types of the core library.  Read me first:
//  * Everything that comes from a stream is untrusted.  Code that finds a stream inconsistent throws
//    BitstreamError naming the field; code that finds a size beyond a configured limit throws
//    LimitError.  Nothing in csrc/ asserts on, or reads past, input it did not validate.
//  * The Python bindings translate both into jpegai_fast.BitstreamError / jpegai_fast.LimitError with
//    the field name attached, so callers can tell "corrupt" from "too big".
#pragma once

#include <stdexcept>
#include <string>

namespace jpegai {

class CodecError : public std::runtime_error {
 public:
  CodecError(std::string field, const std::string& what)
      : std::runtime_error(field + ": " + what), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// The stream is truncated, corrupted or not ours.
class BitstreamError : public CodecError {
 public:
  using CodecError::CodecError;
};

// A dimension, count or size exceeds a configured limit (hostile or absurd input).
class LimitError : public CodecError {
 public:
  using CodecError::CodecError;
};

// Wrong arguments from the caller (shapes, dtypes, value ranges) -- a programming error, not a stream
// error; surfaces as ValueError.
class ArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace jpegai
