#include "util/test_hooks.h"

#include <charconv>

#include "util/env.h"
#include "util/error.h"

namespace vnp {
namespace {

bool g_enabled = false;

}  // namespace

bool test_hooks_enabled() {
  return g_enabled;
}

void enable_test_hooks() {
  g_enabled = true;
}

std::optional<std::string> test_hook(const char* name) {
  if (!g_enabled) return std::nullopt;
  return env::get(name);
}

std::optional<std::uint64_t> test_hook_count(const char* name) {
  const auto text = test_hook(name);
  if (!text) return std::nullopt;
  std::uint64_t value = 0;
  const char* end = text->data() + text->size();
  const auto [stop, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc() || stop != end || value == 0)
    throw UsageError(std::string(name) + "='" + *text + "': expected a positive whole number");
  return value;
}

}  // namespace vnp
