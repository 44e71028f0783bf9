// Readers of JS arguments for every binding file, with one rule set: a value of the expected type,
// integers whole and in range, and a one-line error naming the argument ("config.head_dim: must
// be an integer >= 1"). native/index.ts validates first; these keep the addon safe on its own.
#pragma once
#include <napi.h>

#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace napi_args {

[[noreturn]] inline void fail(const std::string& name, const std::string& what) {
  throw std::invalid_argument(name + ": " + what);
}

inline Napi::Object object_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject()) fail(name, "must be an object");
  return v.As<Napi::Object>();
}

inline double number_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) fail(name, "must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline int int_arg(const Napi::Value& v, const std::string& name, int min = INT_MIN, int max = INT_MAX) {
  const double d = number_arg(v, name);
  if (d != std::floor(d) || d < (double)INT_MIN || d > (double)INT_MAX) fail(name, "must be an integer");
  if (d < min || d > max) {
    if (max == INT_MAX) fail(name, "must be an integer >= " + std::to_string(min));
    fail(name, "must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return (int)d;
}

inline bool bool_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) fail(name, "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string string_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) fail(name, "must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline std::vector<float> float_list(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) fail(name, "must be an array of numbers");
  auto a = v.As<Napi::Array>();
  std::vector<float> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) fail(name, "must be an array of numbers");
    out[i] = x.As<Napi::Number>().FloatValue();
  }
  return out;
}

// Fields of an object, named "where.field" in errors.
inline std::string field_name(const std::string& where, const char* field) { return where + "." + field; }

inline double number_field(const Napi::Object& o, const char* field, const std::string& where) {
  return number_arg(o.Get(field), field_name(where, field));
}

inline double number_field_or(const Napi::Object& o, const char* field, double fallback, const std::string& where) {
  Napi::Value v = o.Get(field);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return number_arg(v, field_name(where, field));
}

inline int int_field(const Napi::Object& o, const char* field, const std::string& where, int min = INT_MIN,
                     int max = INT_MAX) {
  return int_arg(o.Get(field), field_name(where, field), min, max);
}

inline bool bool_field(const Napi::Object& o, const char* field, const std::string& where) {
  return bool_arg(o.Get(field), field_name(where, field));
}

inline std::string string_field(const Napi::Object& o, const char* field, const std::string& where) {
  return string_arg(o.Get(field), field_name(where, field));
}

}  // namespace napi_args
