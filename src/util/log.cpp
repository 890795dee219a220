#include "util/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "util/error.h"

namespace vnp::log {
namespace {

std::atomic<bool> g_partial_line{false};

// The colour sink, after ending a progress bar's line.
class LineAwareSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LineAwareSink() : inner_(std::make_shared<spdlog::sinks::stderr_color_sink_st>()) {}
  void set_pattern_inner(const std::string& pattern) { inner_->set_pattern(pattern); }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    end_partial_line();
    inner_->log(message);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::stderr_color_sink_st> inner_;
};

}  // namespace

void set_partial_line(bool partial) {
  g_partial_line = partial;
}

void end_partial_line() {
  if (g_partial_line.exchange(false)) {
    std::fputs("\r\033[K", stderr);  // the bar is drawn again at its next update
    std::fflush(stderr);
  }
}

void init(const std::string& level, bool quiet) {
  auto logger = std::make_shared<spdlog::logger>("virnucpro", std::make_shared<LineAwareSink>());
  logger->set_pattern("[%H:%M:%S] %^%l%$: %v");
  spdlog::set_default_logger(logger);
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw UsageError("--log-level: unknown level '" + level + "' (trace, debug, info, warn, error, off)");
  if (quiet && lvl < spdlog::level::warn) lvl = spdlog::level::warn;
  spdlog::set_level(lvl);
}

}  // namespace vnp::log
