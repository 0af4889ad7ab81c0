// Errors thrown by the engine. The binding layer turns them into JS errors; the
// message already names the op, the argument, and expected vs received values.
#pragma once
#include <stdexcept>
#include <string>

namespace perceiver {

enum class ErrorKind { Type, Range, Value, Runtime, Memory };

struct Error : std::runtime_error {
  ErrorKind kind;
  Error(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

[[noreturn]] inline void throw_type(const std::string& m) { throw Error(ErrorKind::Type, m); }
[[noreturn]] inline void throw_range(const std::string& m) { throw Error(ErrorKind::Range, m); }
[[noreturn]] inline void throw_value(const std::string& m) { throw Error(ErrorKind::Value, m); }

}  // namespace perceiver
