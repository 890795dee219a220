#pragma once
// Environment variables of SPEC.md §1.
#include <optional>
#include <string>

namespace vnp::env {

// The variable's value, or nothing when unset or empty.
std::optional<std::string> get(const char* name);

// A boolean variable: true/false/1/0 (case-insensitive); anything else is a UsageError.
std::optional<bool> get_bool(const char* name);

}  // namespace vnp::env
