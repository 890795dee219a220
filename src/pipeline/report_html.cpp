#include "pipeline/report_html.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <string_view>
#include <tuple>

#include "util/error.h"
#include "util/float_format.h"
#include "util/version.h"

namespace vnp::pipeline {
namespace {

constexpr const char* kVirusColor = "#c8372d";
constexpr const char* kOthersColor = "#2f6fb0";
constexpr const char* kNoFrameColor = "#9aa3ad";
constexpr const char* kTooShortColor = "#d9dde2";
constexpr double kWidth = 920;  // SVG user units; the page scales them to its width

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  return whole == 0 ? "0 %"
                    : fmt::format("{:.1f} %", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string bases(std::uint64_t n) {
  if (n >= 1000000) return fmt::format("{:g} Mb", static_cast<double>(n) / 1e6);
  if (n >= 1000) return fmt::format("{:g} kb", static_cast<double>(n) / 1e3);
  return fmt::format("{} bp", n);
}

// A step of 1, 2 or 5 times a power of ten that cuts [0, max] into at most `ticks` parts.
double nice_step(double max, int ticks) {
  if (max <= 0) return 1;
  const double raw = max / ticks, power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) return m * power;
  return 10 * power;
}

// One plot area inside an SVG: data coordinates to user units.
struct Frame {
  double left, top, width, height;
  double x_min, x_max, y_min, y_max;
  double x(double v) const { return left + (v - x_min) / (x_max - x_min) * width; }
  double y(double v) const { return top + height - (v - y_min) / (y_max - y_min) * height; }
};

std::string svg_open(double height, std::string_view label) {
  return fmt::format(
      "<svg viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
      kWidth, height, escape(label));
}

// Grid line and label per tick on the y axis.
std::string y_axis(const Frame& f, double step, const std::function<std::string(double)>& label) {
  std::string out;
  for (double v = f.y_min; v <= f.y_max + step * 1e-9; v += step)
    out += fmt::format(
        "<line class=\"grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        f.left, f.left + f.width, f.y(v), f.y(v), f.left - 8, f.y(v) + 4, label(v));
  return out;
}

std::string axis_title(double x, double y, std::string_view text, bool vertical = false) {
  if (vertical)
    return fmt::format(
        "<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" "
        "transform=\"rotate(-90 {:.1f} {:.1f})\">{}</text>\n",
        x, y, x, y, escape(text));
  return fmt::format("<text class=\"axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x,
                     y, escape(text));
}

std::string legend(double x, double y, std::vector<std::pair<const char*, std::string>> entries) {
  std::string out;
  for (const auto& [color, text] : entries) {
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        x, y - 10, color, x + 18, y, escape(text));
    x += 30 + 7.2 * static_cast<double>(text.size());
  }
  return out;
}

std::string score_text(float score) {
  return std::isnan(score) ? "NA" : format_float32_numpy(score);
}

constexpr const char* kStyle = R"(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1d2330;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0 0 4px; }
p { margin: 4px 0; }
.sub { color: #5b6472; font-size: 14px; overflow-wrap: anywhere; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 10px; padding: 18px 20px; margin-top: 18px; }
.note { color: #5b6472; font-size: 13px; margin-top: 6px; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-top: 12px; }
.card { border-radius: 8px; padding: 10px 14px; background: #f7f8fa; border-left: 6px solid #999; }
.card .n { font-size: 24px; font-weight: 650; }
.card .what { font-size: 13px; color: #5b6472; }
.bar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; margin-top: 14px; background: #eef0f3; }
svg { width: 100%; height: auto; display: block; margin-top: 8px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; }
.grid { stroke: #e6e8ec; stroke-width: 1; }
.frame { stroke: #9aa3ad; stroke-width: 1; fill: none; }
.tick { font-size: 12px; fill: #5b6472; }
.axis { font-size: 13px; fill: #1d2330; }
.label { font-size: 13px; fill: #1d2330; font-weight: 600; }
table { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
td, th { text-align: left; padding: 3px 14px 3px 0; vertical-align: top; }
th { color: #5b6472; font-weight: 600; }
@media (max-width: 760px) { .cards { grid-template-columns: repeat(2, 1fr); } }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
)";

}  // namespace

ReportBuilder::ReportBuilder(ReportSettings settings) : settings_(std::move(settings)) {}

void ReportBuilder::add_sequence(const SummaryRow& row) {
  counts_.add(row.call);
  const bool scored = row.scored_chunks > 0 && !std::isnan(row.virus_score);
  if (scored) {
    const bool virus = row.call == SequenceCall::kVirus;
    const float score = std::clamp(row.virus_score, 0.0f, 1.0f);
    const auto bin = std::min<std::size_t>(static_cast<std::size_t>(score * kScoreBins), kScoreBins - 1);
    ++(virus ? virus_bins_ : other_bins_)[bin];
    // Reservoir sampling: every scored record has the same chance to be drawn.
    const Point p{row.length, row.viral_fraction, virus};
    ++scored_seen_;
    if (sample_.size() < settings_.scatter_points) {
      sample_.push_back(p);
    } else {
      const std::uint64_t slot = random_() % scored_seen_;
      if (slot < sample_.size()) sample_[slot] = p;
    }
    keep_if_longest(row);
  }
  ++sequences_seen_;
  chunk_rows_seen_ += row.chunks;
}

// Keeps the `tracks` longest scored records, the earliest first among equal lengths.
void ReportBuilder::keep_if_longest(const SummaryRow& row) {
  const auto shorter = [](const Track& a, const Track& b) { return a.length > b.length; };
  if (tracks_.size() == settings_.tracks) {
    if (settings_.tracks == 0 || tracks_.back().length >= row.length) return;
    tracks_.pop_back();
  }
  Track t;
  t.id = std::string(row.id);
  t.length = row.length;
  t.ordinal = sequences_seen_;
  t.first_chunk_row = chunk_rows_seen_;
  t.chunks = row.chunks;
  t.virus_score = row.virus_score;
  t.viral_fraction = row.viral_fraction;
  t.call = row.call;
  t.bins.resize(std::min<std::uint64_t>(row.chunks, settings_.track_bins));
  tracks_.insert(std::upper_bound(tracks_.begin(), tracks_.end(), t, shorter), std::move(t));
}

bool ReportBuilder::wants_chunks() const {
  for (const auto& t : tracks_)
    if (chunk_rows_read_ < t.first_chunk_row + t.chunks) return true;
  return false;
}

void ReportBuilder::add_chunk(const ChunkRow& row) {
  const std::uint64_t index = chunk_rows_read_++;
  for (auto& t : tracks_) {
    if (index < t.first_chunk_row || index >= t.first_chunk_row + t.chunks) continue;
    TrackBin& bin = t.bins[(index - t.first_chunk_row) * t.bins.size() / t.chunks];
    bin.start = bin.used ? std::min(bin.start, row.start) : row.start;
    bin.end = bin.used ? std::max(bin.end, row.end) : row.end;
    bin.used = true;
    if (!std::isnan(row.virus_score)) {
      bin.score = bin.scored ? std::max(bin.score, row.virus_score) : row.virus_score;
      bin.scored = true;
    }
  }
}

std::string ReportBuilder::counts_section() const {
  const std::uint64_t n = counts_.sequences();
  struct Entry {
    const char* color;
    std::uint64_t count;
    const char* name;
    const char* what;
  };
  const Entry entries[] = {
      {kVirusColor, counts_.virus, "virus", "called viral"},
      {kOthersColor, counts_.others, "others", "scored, not viral"},
      {kNoFrameColor, counts_.no_valid_frame, "no_valid_frame", "not scored: no stop-free frame"},
      {kTooShortColor, counts_.too_short, "too_short", "not scored: shorter than --min-length"}};
  std::string cards, bar;
  for (const auto& e : entries) {
    cards += fmt::format(
        "<div class=\"card\" style=\"border-left-color:{}\"><div class=\"n\">{}</div>"
        "<div class=\"what\"><code>{}</code> · {} · {}</div></div>\n",
        e.color, with_commas(e.count), e.name, percent(e.count, n), e.what);
    if (e.count > 0)
      bar += fmt::format("<div title=\"{}: {}\" style=\"background:{};flex:{}\"></div>", e.name,
                         with_commas(e.count), e.color, e.count);
  }
  return fmt::format(
      "<section><h2>Calls</h2><p>{} sequences</p><div class=\"cards\">{}</div>"
      "<div class=\"bar\">{}</div></section>\n",
      with_commas(n), cards, bar);
}

std::string ReportBuilder::histogram_svg() const {
  std::uint64_t top = 1;
  for (std::size_t b = 0; b < kScoreBins; ++b) top = std::max(top, virus_bins_[b] + other_bins_[b]);
  const double step = nice_step(static_cast<double>(top), 5);
  const Frame f{70, 46, kWidth - 100, 230, 0, 1, 0, std::ceil(static_cast<double>(top) / step) * step};
  std::string out = svg_open(336, "histogram of virus scores");
  out += legend(f.left, 16, {{kVirusColor, "called virus"}, {kOthersColor, "called others"}});
  out += y_axis(f, step, [](double v) { return with_commas(static_cast<std::uint64_t>(std::llround(v))); });
  const double bin_width = f.width / kScoreBins;
  for (std::size_t b = 0; b < kScoreBins; ++b) {
    const double x = f.left + static_cast<double>(b) * bin_width + 1;
    const double lo = static_cast<double>(b) / kScoreBins, hi = static_cast<double>(b + 1) / kScoreBins;
    double base = 0;
    for (auto [count, color, name] : {std::tuple{other_bins_[b], kOthersColor, "others"},
                                      std::tuple{virus_bins_[b], kVirusColor, "virus"}}) {
      if (count == 0) continue;
      const double y0 = f.y(base), y1 = f.y(base + static_cast<double>(count));
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>virus_score {:.2f}–{:.2f}: {} {}</title></rect>\n",
          x, y1, bin_width - 2, y0 - y1, color, lo, hi, with_commas(count), name);
      base += static_cast<double>(count);
    }
  }
  for (int i = 0; i <= 10; ++i) {
    const double v = i / 10.0;
    out +=
        fmt::format("<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.1f}</text>\n",
                    f.x(v), f.top + f.height + 18, v);
  }
  if (settings_.rule.min_score)
    out += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#1d2330\" "
        "stroke-dasharray=\"5 4\"/><text class=\"tick\" x=\"{0:.1f}\" y=\"{3:.1f}\" "
        "text-anchor=\"middle\">--min-score {4:g}</text>\n",
        f.x(std::clamp(*settings_.rule.min_score, 0.0, 1.0)), f.top - 3, f.top + f.height, f.top - 7,
        *settings_.rule.min_score);
  out += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\n", f.left, f.top,
                     f.width, f.height);
  out += axis_title(f.left + f.width / 2, f.top + f.height + 42, "virus_score (the best chunk's P(virus))");
  out += axis_title(20, f.top + f.height / 2, "sequences", true);
  return out + "</svg>\n";
}

std::string ReportBuilder::scatter_svg() const {
  std::uint64_t shortest = 0, longest = 1;
  for (std::size_t i = 0; i < sample_.size(); ++i) {
    shortest = i == 0 ? sample_[i].length : std::min(shortest, sample_[i].length);
    longest = std::max(longest, sample_[i].length);
  }
  // A log axis from the power of ten below the shortest to the one above the longest.
  const double lo = std::floor(std::log10(static_cast<double>(std::max<std::uint64_t>(shortest, 1))));
  const double hi = std::max(lo + 1, std::ceil(std::log10(static_cast<double>(longest)) + 1e-9));
  const Frame f{70, 30, kWidth - 100, 260, lo, hi, -0.04, 1.04};
  std::string out = svg_open(350, "viral fraction against sequence length");
  out += legend(f.left, 16, {{kVirusColor, "called virus"}, {kOthersColor, "called others"}});
  out += y_axis(Frame{f.left, f.y(1), f.width, f.y(0) - f.y(1), lo, hi, 0, 1}, 0.25,
                [](double v) { return fmt::format("{:g}", v); });
  for (double e = lo; e <= hi + 1e-9; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = e + std::log10(m);
      if (v > hi + 1e-9) break;
      out += fmt::format(
          "<line class=\"grid\" x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\"/>"
          "<text class=\"tick\" x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
          f.x(v), f.top, f.top + f.height, f.top + f.height + 18,
          bases(static_cast<std::uint64_t>(std::llround(std::pow(10.0, v)))));
    }
  }
  // Others first, so that the viral points stay visible on top.
  for (bool virus : {false, true})
    for (const auto& p : sample_)
      if (p.virus == virus)
        out +=
            fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\" fill-opacity=\"0.55\"/>\n",
                        f.x(std::log10(static_cast<double>(std::max<std::uint64_t>(p.length, 1)))),
                        f.y(p.viral_fraction), virus ? kVirusColor : kOthersColor);
  out += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\n", f.left, f.top,
                     f.width, f.height);
  out += axis_title(f.left + f.width / 2, f.top + f.height + 42, "sequence length (log scale)");
  out += axis_title(20, f.top + f.height / 2, "viral_fraction", true);
  return out + "</svg>\n";
}

std::string ReportBuilder::tracks_svg() const {
  constexpr double kRow = 96, kBand = 60, kLeft = 70, kRight = 30;
  const double height = 24 + kRow * static_cast<double>(tracks_.size()) + 30;
  std::string out = svg_open(height, "chunk scores along the longest sequences");
  const double threshold = settings_.rule.min_score.value_or(0.5);
  out += legend(kLeft, 16,
                {{kVirusColor, fmt::format("chunk P(virus) ≥ {:g}", threshold)},
                 {kOthersColor, fmt::format("chunk P(virus) < {:g}", threshold)},
                 {kNoFrameColor, "no stop-free frame"}});
  for (std::size_t i = 0; i < tracks_.size(); ++i) {
    const Track& t = tracks_[i];
    const double top = 24 + kRow * static_cast<double>(i) + 22;
    const Frame f{kLeft, top, kWidth - kLeft - kRight,
                  kBand, 0,   static_cast<double>(std::max<std::uint64_t>(t.length, 1)),
                  0,     1};
    out += fmt::format(
        "<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text><text class=\"tick\" x=\"{:.1f}\" "
        "y=\"{:.1f}\" text-anchor=\"end\">{} · {} chunks · {} · viral_fraction {} · virus_score {}</text>\n",
        f.left, top - 6, escape(t.id.size() > 60 ? t.id.substr(0, 57) + "..." : t.id), f.left + f.width,
        top - 6, bases(t.length), with_commas(t.chunks), call_name(t.call), score_text(t.viral_fraction),
        score_text(t.virus_score));
    out +=
        fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#f7f8fa\"/>\n",
                    f.left, f.top, f.width, f.height);
    for (const auto& b : t.bins) {
      if (!b.used) continue;
      const double x0 = f.x(static_cast<double>(b.start - 1)), x1 = f.x(static_cast<double>(b.end));
      const double w = std::max(1.0, x1 - x0 - (x1 - x0 > 3 ? 1 : 0));
      if (!b.scored) {
        out += fmt::format(
            "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"4\" fill=\"{}\"><title>{}–{}: no "
            "stop-free frame</title></rect>\n",
            x0, f.top + f.height - 4, w, kNoFrameColor, b.start, b.end);
        continue;
      }
      const double score = std::clamp(static_cast<double>(b.score), 0.0, 1.0);
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{}–{}: P(virus) {}</title></rect>\n",
          x0, f.y(score), w, std::max(1.0, f.y(0) - f.y(score)),
          score >= threshold ? kVirusColor : kOthersColor, b.start, b.end, format_float32_numpy(b.score));
    }
    // The threshold line over the bars.
    out += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#1d2330\" "
        "stroke-opacity=\"0.6\" "
        "stroke-dasharray=\"4 3\"/>\n",
        f.left, f.left + f.width, f.y(threshold), f.y(threshold));
    out += fmt::format(
        "<rect class=\"frame\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">1</text>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">0</text>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">1</text>"
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        f.left, f.top, f.width, f.height, f.left - 6, f.top + 10, f.left - 6, f.top + f.height, f.left,
        f.top + f.height + 14, f.left + f.width, f.top + f.height + 14, bases(t.length));
  }
  return out + "</svg>\n";
}

std::string ReportBuilder::html() const {
  std::string inputs;
  for (const auto& in : settings_.inputs) inputs += (inputs.empty() ? "" : ", ") + escape(in);
  std::string rule = settings_.rule.min_score
                         ? fmt::format("a chunk is viral when its best P(virus) ≥ {:g} (--min-score)",
                                       *settings_.rule.min_score)
                         : std::string(
                               "a chunk is viral when max P(virus) ≥ max P(others) over its frames "
                               "(the original rule)");
  rule += "; a sequence is <code>virus</code> when at least half of its scored chunks are viral";
  if (settings_.rule.min_length > 0)
    rule += fmt::format("; sequences shorter than {} bp are not scored (--min-length)",
                        settings_.rule.min_length);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<title>virnucpro report</title>\n<style>" + std::string(kStyle) +
         "</style>\n</head>\n<body>\n<main>\n";
  out += fmt::format(
      "<h1>virnucpro results</h1>\n<p class=\"sub\">{} · input: {} · output: {}</p>\n"
      "<p class=\"sub\">Call rule: {}.</p>\n",
      escape(kVersion), inputs, escape(settings_.output_dir), rule);
  out += counts_section();
  const std::uint64_t scored = counts_.virus + counts_.others;
  out += "<section><h2>Virus score per sequence</h2>";
  out +=
      "<p class=\"note\">The best chunk's P(virus) of each scored sequence, in bins of 0.05, by the "
      "sequence's call.</p>\n";
  out += histogram_svg() + "</section>\n";
  out += "<section><h2>Viral fraction by length</h2>";
  out += fmt::format(
      "<p class=\"note\">Each point is a scored sequence: the share of its scored chunks that are viral. "
      "{} of {} scored sequences shown{}.</p>\n",
      with_commas(sample_.size()), with_commas(scored), sample_.size() < scored ? " (a random sample)" : "");
  out += scatter_svg() + "</section>\n";
  out += "<section><h2>Chunk scores along the longest sequences</h2>";
  out += fmt::format(
      "<p class=\"note\">The {} longest scored sequences; each bar is a chunk (or the best of neighbouring "
      "chunks where a sequence has more than {}), its height the chunk's best P(virus) "
      "(<code>chunks.tsv</code>); "
      "the dashed line marks {:g}.</p>\n",
      tracks_.size(), settings_.track_bins, settings_.rule.min_score.value_or(0.5));
  out += (tracks_.empty() ? std::string("<p>No sequence was scored.</p>") : tracks_svg()) + "</section>\n";
  out +=
      "<section><h2>Files</h2><table>\n"
      "<tr><td><code>sequence_summary.tsv</code></td><td>one row per input sequence: call, viral fraction, "
      "virus_score, source</td></tr>\n"
      "<tr><td><code>virus.fna</code></td><td>the sequences called virus</td></tr>\n"
      "<tr><td><code>chunks.tsv</code></td><td>one row per chunk: coordinates, best frame, "
      "virus_score</td></tr>\n"
      "<tr><td><code>prediction_results.txt</code></td><td>one row per scored frame (the original's "
      "file)</td></tr>\n"
      "<tr><td><code>prediction_results_highestscore.csv</code></td><td>one row per chunk (the original's "
      "file)</td></tr>\n"
      "<tr><td><code>run.json</code></td><td>settings, models, counts and timings</td></tr>\n"
      "</table></section>\n";
  return out + "</main>\n</body>\n</html>\n";
}

CallCounts write_report(const std::filesystem::path& summary, const std::filesystem::path& chunks,
                        bool chunks_header, const ReportSettings& settings, io::AtomicFile& out) {
  const auto malformed = [](const std::filesystem::path& file, std::uint64_t line) {
    return Error(ExitCode::kInput,
                 fmt::format("{}: line {}: malformed row (use --force to start over)", file.string(), line));
  };
  ReportBuilder report(settings);
  std::string line;
  {
    std::ifstream in(summary);
    std::getline(in, line);  // the header
    for (std::uint64_t n = 2; std::getline(in, line); ++n) {
      const auto row = parse_summary_row(line);
      if (!row) throw malformed(summary, n);
      report.add_sequence(*row);
    }
  }
  {
    std::ifstream in(chunks);
    std::uint64_t n = 1;
    if (chunks_header && std::getline(in, line)) ++n;
    for (; report.wants_chunks() && std::getline(in, line); ++n) {
      const auto row = parse_chunk_row(line);
      if (!row) throw malformed(chunks, n);
      report.add_chunk(*row);
    }
  }
  out.write(report.html());
  return report.counts();
}

}  // namespace vnp::pipeline
