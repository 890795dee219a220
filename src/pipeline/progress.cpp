#include "pipeline/progress.h"

#include <fmt/format.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/sequence_reader.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kLogEvery = std::chrono::seconds(30);

std::string duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace

Progress::Progress(std::vector<std::string> inputs, double records_share, bool terminal,
                   const RunCounters& initial)
    : records_share_(records_share),
      terminal_(terminal),
      start_(Clock::now()),
      last_log_(start_),
      initial_(initial) {
  // Only regular files can be read twice (not stdin, a pipe or a process substitution).
  const bool countable = std::all_of(inputs.begin(), inputs.end(), [](const std::string& in) {
    return std::filesystem::is_regular_file(in);
  });
  if (!countable) return;
  counter_ = std::thread([this, inputs = std::move(inputs)] {
    try {
      io::SequenceReader reader(inputs);
      io::SequenceRecord record;
      std::int64_t n = 0;
      while (!stop_ && reader.next(record)) ++n;
      if (!stop_) total_records_ = n;
    } catch (...) {
      // The main reader reports input errors; without a count there is no ETA.
    }
  });
}

Progress::~Progress() {
  stop_ = true;
  if (counter_.joinable()) counter_.join();
}

std::string Progress::line(const RunCounters& c, double seconds) const {
  const double tokens =
      static_cast<double>(c.esm_tokens + c.dnabert_tokens - initial_.esm_tokens - initial_.dnabert_tokens);
  const double rate = seconds > 0 ? tokens / seconds : 0;
  std::string out =
      fmt::format("{} records, {} frames, {:.0f} tokens/s, {}", c.records, c.frames, rate, duration(seconds));
  const std::int64_t total = total_records_;
  if (total > 0) {
    const double all = static_cast<double>(total) * records_share_;
    const double done = static_cast<double>(c.records),
                 new_done = done - static_cast<double>(initial_.records);
    const double fraction = std::min(1.0, done / all);
    out = fmt::format("{:5.1f}% ", 100 * fraction) + out;
    if (new_done > 0 && fraction < 1) out += ", ETA " + duration(seconds * (all - done) / new_done);
  }
  return out;
}

void Progress::update(const RunCounters& counters) {
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K%s", line(counters, seconds).c_str());
    std::fflush(stderr);
  } else if (now - last_log_ >= kLogEvery) {
    last_log_ = now;
    log::info("{}", line(counters, seconds));
  }
}

void Progress::finish(const RunCounters& counters) {
  if (terminal_) {
    update(counters);
    std::fprintf(stderr, "\n");
  }
}

}  // namespace vnp::pipeline
