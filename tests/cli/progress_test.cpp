// The progress bar: fits the terminal, shows reads/s beside tokens/s, moves with every batch (not
// every segment), and an error starts on its own line. The terminal runs use `script` for a pty.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "pipeline/progress.h"
#include "test_util.h"

namespace vnp {
namespace {

using pipeline::Progress;

Progress::Snapshot halfway() {
  Progress::Snapshot s;
  s.total_records = 20000;
  s.seconds = 14;
  s.records = 8000;
  s.new_records = 8000;
  s.frames = 32000;
  s.new_frames = 32000;
  s.new_tokens = 5.1e6;
  s.frames_per_record = 4;
  return s;
}

TEST(ProgressLine, ShowsReadsPerSecondBesideTokensPerSecond) {
  const std::string line = Progress::line(halfway(), 200);
  EXPECT_EQ(line.rfind(" 40.0%", 0), 0u) << line;
  for (const char* part : {"8000 reads", "571 reads/s", "364.3k tokens/s", "ETA 21s", "32000 frames"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " in " << line;
}

TEST(ProgressLine, FitsANarrowTerminal) {
  for (int columns : {20, 50, 80}) {
    const std::string line = Progress::line(halfway(), columns);
    EXPECT_LT(line.size(), static_cast<std::size_t>(columns)) << line;  // the last column stays free
    EXPECT_EQ(line.rfind(" 40.0%", 0), 0u) << line;                     // the most useful field stays
  }
}

TEST(ProgressLine, EmbeddedBatchesMoveTheBarBetweenSegments) {
  Progress::Snapshot s = halfway();
  const std::string before = Progress::line(s, 200);
  s.frames += 4000;  // batches embedded, their segment not yet committed
  s.new_frames += 4000;
  EXPECT_NE(Progress::line(s, 200).substr(0, 6), before.substr(0, 6)) << before;
}

// Runs `command` on a pseudo-terminal `columns` wide; returns what the terminal received.
std::string on_terminal(const std::string& command, int columns, int& exit_code) {
  const std::string script = "script -qfec \"stty cols " + std::to_string(columns) + " rows 20; " + command +
                             "\" /dev/null < /dev/null";
  FILE* pipe = ::popen(script.c_str(), "r");
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe);
  exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

bool have_script() {
  return std::system("command -v script > /dev/null 2>&1") == 0;
}

// The bar's drawings: the text after each "\r\033[K" up to the next control character.
std::vector<std::string> drawings(const std::string& terminal) {
  std::vector<std::string> out;
  for (std::size_t at = terminal.find("\r\033[K"); at != std::string::npos;
       at = terminal.find("\r\033[K", at + 1)) {
    const std::size_t begin = at + 4;
    const std::size_t end = terminal.find_first_of("\r\n\033", begin);
    out.push_back(terminal.substr(begin, end - begin));
  }
  return out;
}

std::string proteins(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string fasta;
  for (std::size_t i = 0; i < n; ++i) {
    fasta += ">p" + std::to_string(i) + "\n";
    for (std::size_t k = 0; k < 40 + rng() % 40; ++k) fasta += "ACDEFGHIKLMNPQRSTVWY"[rng() % 20];
    fasta += '\n';
  }
  return fasta;
}

TEST(ProgressTerminal, TheBarMovesPerBatchAndFitsFiftyColumns) {
  if (!have_script()) GTEST_SKIP() << "no `script` for a pseudo-terminal";
  test::ScratchDir dir;
  test::write_file(dir / "p.faa", proteins(3000, 4));
  const auto start = std::chrono::steady_clock::now();
  int rc = -1;
  const std::string terminal = on_terminal(
      std::string(VNP_BINARY) + " embed esm " + (dir / "p.faa").string() + " --model " +
          test::data_path("esm2_tiny").string() + " --token-budget 500 -t 1 -o " + (dir / "e.tsv").string(),
      50, rc);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(rc, 0) << terminal;
  const auto drawn = drawings(terminal);
  ASSERT_FALSE(drawn.empty()) << terminal;
  for (const auto& d : drawn) EXPECT_LT(d.size(), 50u) << d;
  EXPECT_NE(drawn.back().find("3000 reads"), std::string::npos) << drawn.back();
  // Redrawn at most every 0.2 s: a run of several seconds (one window of 3000 records: one segment)
  // shows the bar several times before its end.
  if (seconds > 2) {
    EXPECT_GE(drawn.size(), 3u) << terminal;
  }
}

TEST(ProgressTerminal, AnErrorStartsOnItsOwnLine) {
  if (!have_script()) GTEST_SKIP() << "no `script` for a pseudo-terminal";
  test::ScratchDir dir;
  // 4096 short records (the first window) embed; then a long one runs out of (test) memory alone.
  std::string fasta = proteins(4096, 5) + ">long\n" + std::string(600, 'L') + "\n";
  test::write_file(dir / "p.faa", fasta);
  int rc = -1;
  const std::string terminal =
      on_terminal("VIRNUCPRO_TEST_OOM_ABOVE_TOKENS=300 " + std::string(VNP_BINARY) + " embed esm " +
                      (dir / "p.faa").string() + " --model " + test::data_path("esm2_tiny").string() +
                      " --token-budget 2000 -t 1 -o " + (dir / "e.tsv").string(),
                  50, rc);
  EXPECT_EQ(rc, 4) << terminal;
  const auto at = terminal.find("virnucpro: error:");
  ASSERT_NE(at, std::string::npos) << terminal;
  EXPECT_EQ(terminal[at - 1], '\n') << terminal;
}

}  // namespace
}  // namespace vnp
