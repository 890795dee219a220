#pragma once
// Logging: spdlog to stderr. Levels from --log-level (trace..off); --quiet = warn.
#include <spdlog/spdlog.h>

#include <string>

namespace vnp::log {

// Sets up the stderr logger. level: trace, debug, info, warn, error, off.
void init(const std::string& level, bool quiet);

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace vnp::log
