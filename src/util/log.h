#pragma once
// Logging: spdlog to stderr. Levels from --log-level (trace..off); --quiet = warn.
#include <spdlog/spdlog.h>

#include <string>

namespace vnp::log {

// Sets up the stderr logger. level: trace, debug, info, warn, error, off.
void init(const std::string& level, bool quiet);

// A progress bar has left a line on stderr without its newline: the next message (a log line, an
// error) first ends it, so that it starts on its own line.
void set_partial_line(bool partial);
// Ends a partial line, if one is on stderr (main() calls it before printing an error).
void end_partial_line();

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace vnp::log
