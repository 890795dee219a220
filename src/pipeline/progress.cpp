#include "pipeline/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/sequence_reader.h"
#include "util/env.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kLogEvery = std::chrono::seconds(30);
// Redraws at most this often: a batch can take a millisecond on a GPU.
constexpr auto kDrawEvery = std::chrono::milliseconds(200);

std::string duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// "12.3k" style rates: short enough for a narrow terminal.
std::string rate(double per_second) {
  if (per_second >= 1e6) return fmt::format("{:.1f}M", per_second / 1e6);
  if (per_second >= 1e4) return fmt::format("{:.1f}k", per_second / 1e3);
  return fmt::format("{:.0f}", per_second);
}

}  // namespace

int terminal_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const auto columns = env::get("COLUMNS")) {
    const int n = std::atoi(columns->c_str());
    if (n > 0) return n;
  }
  return 80;
}

Progress::Progress(std::vector<std::string> inputs, double records_share, bool terminal,
                   const RunCounters& initial, bool rows_are_records)
    : records_share_(records_share),
      terminal_(terminal),
      rows_are_records_(rows_are_records),
      start_(Clock::now()),
      last_log_(start_),
      last_draw_(start_),
      initial_(initial),
      counters_(initial) {
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
  std::lock_guard lock(mutex_);
  if (shown_) {
    std::fputc('\n', stderr);
    log::set_partial_line(false);
  }
}

Progress::Snapshot Progress::snapshot_locked(Clock::time_point now) const {
  Snapshot s;
  s.total_records = total_records_;
  s.records_share = records_share_;
  s.seconds = std::chrono::duration<double>(now - start_).count();
  s.records = counters_.records;
  s.new_records = counters_.records - initial_.records;
  s.new_frames = embedded_rows_;
  s.frames = static_cast<double>(initial_.frames) + embedded_rows_;
  s.new_tokens = embedded_tokens_;
  s.rows_are_records = rows_are_records_;
  if (rows_are_records_)
    s.frames_per_record = 1;
  else if (counters_.records > 0)
    s.frames_per_record = static_cast<double>(counters_.frames) / static_cast<double>(counters_.records);
  return s;
}

std::string Progress::line(const Snapshot& s, int columns) {
  // The fields by importance: the last ones go first when the terminal is narrow.
  std::vector<std::string> fields;
  double fraction = -1;
  if (s.total_records > 0 && s.frames_per_record > 0) {
    const double all_rows = static_cast<double>(s.total_records) * s.records_share * s.frames_per_record;
    fraction = all_rows > 0 ? std::min(1.0, s.frames / all_rows) : 1.0;
  }
  if (fraction >= 0) fields.push_back(fmt::format("{:5.1f}%", 100 * fraction));
  const double reads = s.rows_are_records ? s.frames : static_cast<double>(s.records);
  const double new_reads = s.rows_are_records ? s.new_frames : static_cast<double>(s.new_records);
  fields.push_back(fmt::format("{:.0f} reads", reads));
  const double seconds = std::max(s.seconds, 1e-9);
  fields.push_back(rate(new_reads / seconds) + " reads/s");
  fields.push_back(rate(s.new_tokens / seconds) + " tokens/s");
  if (!s.rows_are_records) fields.push_back(fmt::format("{:.0f} frames", s.frames));
  if (fraction > 0 && fraction < 1 && s.new_frames > 0) {
    const double rows_left = s.frames / fraction - s.frames;
    fields.insert(fields.begin() + 1, "ETA " + duration(rows_left * s.seconds / s.new_frames));
  }
  fields.push_back(duration(s.seconds));
  // One column short of the width: a line that fills the last column wraps on some terminals.
  const auto room = static_cast<std::size_t>(std::max(columns - 1, 1));
  std::string out;
  for (const auto& field : fields) {
    const std::size_t extra = (out.empty() ? 0 : 2) + field.size();
    if (out.size() + extra > room) continue;
    out += (out.empty() ? "" : ", ") + field;
  }
  return out.substr(0, room);
}

void Progress::draw_locked(bool force) {
  const auto now = Clock::now();
  if (terminal_) {
    if (!force && now - last_draw_ < kDrawEvery) return;
    last_draw_ = now;
    std::fprintf(stderr, "\r\033[K%s", line(snapshot_locked(now), terminal_columns()).c_str());
    std::fflush(stderr);
    shown_ = true;
    log::set_partial_line(true);
  } else if (now - last_log_ >= kLogEvery) {
    last_log_ = now;
    log::info("{}", line(snapshot_locked(now), 1 << 20));
  }
}

void Progress::batch_done(const BatchReport& batch) {
  std::lock_guard lock(mutex_);
  embedded_rows_ +=
      static_cast<double>(batch.rows) / static_cast<double>(std::max<std::size_t>(batch.encoders, 1));
  embedded_tokens_ += static_cast<double>(batch.tokens);
  draw_locked(false);
}

void Progress::update(const RunCounters& counters) {
  std::lock_guard lock(mutex_);
  counters_ = counters;
  // What the segments committed is exact; the batches' share only estimates it in between.
  embedded_rows_ = std::max(embedded_rows_, static_cast<double>(counters.frames - initial_.frames));
  draw_locked(false);
}

void Progress::finish(const RunCounters& counters) {
  std::lock_guard lock(mutex_);
  counters_ = counters;
  if (terminal_) {
    draw_locked(true);
    std::fputc('\n', stderr);
    shown_ = false;
    log::set_partial_line(false);
  }
}

}  // namespace vnp::pipeline
