#include "util/env.h"

#include <algorithm>
#include <cstdlib>

#include "util/error.h"

namespace vnp::env {

std::optional<std::string> get(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<bool> get_bool(const char* name) {
  auto v = get(name);
  if (!v) return std::nullopt;
  std::string s = *v;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "1") return true;
  if (s == "false" || s == "0") return false;
  throw UsageError(std::string(name) + "='" + *v + "': expected true, false, 1 or 0");
}

}  // namespace vnp::env
