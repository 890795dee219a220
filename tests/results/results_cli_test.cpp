// What `predict` writes beside the original's two files (SPEC §4): sequence_summary.tsv, chunks.tsv,
// virus.fna, report.html, the end-of-run counts, the --min-score / --min-length filters, and the
// publication of the final files (all or nothing, whatever the scores).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_util.h"
#include "weights/state_dict.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;
using Table = std::vector<std::vector<std::string>>;
using nlohmann::json;

const char* const kNewFiles[] = {"sequence_summary.tsv", "chunks.tsv", "virus.fna", "report.html"};
const char* const kOriginalFiles[] = {"prediction_results.txt", "prediction_results_highestscore.csv"};

test::RunResult predict(const std::vector<std::string>& inputs, const fs::path& out,
                        const std::vector<std::string>& extra = {},
                        const std::string& classifier = test::data_path("mlp/mlp_tiny_160x32.pth").string()) {
  std::vector<std::string> args = {"predict"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  for (const std::string& a :
       {std::string("-o"), out.string(), std::string("--esm-model"), test::data_path("esm2_tiny").string(),
        std::string("--dnabert-model"), test::data_path("dnabert2_tiny").string(),
        std::string("--classifier"), classifier})
    args.push_back(a);
  args.insert(args.end(), extra.begin(), extra.end());
  return test::run_virnucpro(args);
}

std::vector<std::string> two_inputs() {
  return {test::data_path("preprocess/messy.fa").string(), test::data_path("preprocess/coding.fa").string()};
}

// The records of a FASTA file: id -> sequence, in order.
std::vector<std::pair<std::string, std::string>> read_fasta(const fs::path& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(test::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with('>')) {
      out.push_back({line.substr(1), ""});
    } else if (!out.empty()) {
      out.back().second += line;
    }
  }
  return out;
}

// The classifier of the demo models with its output bias replaced, as a safetensors file.
fs::path classifier_with_output_bias(const fs::path& dir, float others, float virus) {
  const auto sd = weights::load_state_dict(test::data_path("mlp/mlp_tiny_160x32.state_dict.pth"));
  json header = json::object();
  std::string data;
  for (const auto& name : sd.names()) {
    if (name.ends_with("num_batches_tracked")) continue;  // an integer counter the classifier does not read
    std::vector<double> values = sd.to_float64(name);
    if (name == "output_layer.bias") values = {others, virus};
    std::vector<float> f(values.begin(), values.end());
    const std::size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float));
    header[name] = {{"dtype", "F32"}, {"shape", sd.at(name).shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string h = header.dump();
  const std::uint64_t n = h.size();
  std::string file(reinterpret_cast<const char*>(&n), sizeof n);
  file += h + data;
  const fs::path path = dir / "biased.safetensors";
  test::write_file(path, file);
  return path;
}

// ---- issue 15 item 7: subnormal scores, all-or-nothing publication

TEST(ResultFiles, SubnormalScoresArePublished) {
  test::ScratchDir dir;
  const fs::path classifier = classifier_with_output_bias(dir.path(), 0.0f, 95.0f);
  const auto r =
      predict({test::data_path("preprocess/coding.fa").string()}, dir / "out", {}, classifier.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The case is real: some P(others) is below the smallest normal float32.
  const Table rows = test::read_tsv(dir / "out/prediction_results.txt");
  std::size_t subnormal = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const double p = std::stod(rows[i][2]);
    if (p > 0 && p < 1.17549435e-38) ++subnormal;
  }
  EXPECT_GT(subnormal, 0u);
  // The highest-score table holds each chunk's maxima exactly as the frames give them.
  std::map<std::string, std::string> max_others;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::string chunk = rows[i][0].substr(0, rows[i][0].size() - 2);
    if (!max_others.count(chunk) || std::stod(rows[i][2]) > std::stod(max_others[chunk]))
      max_others[chunk] = rows[i][2];
  }
  const Table calls = test::read_tsv(dir / "out/prediction_results_highestscore.csv");
  ASSERT_EQ(calls.size(), max_others.size() + 1);
  for (std::size_t i = 1; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i][1], "True") << calls[i][0];
    EXPECT_EQ(calls[i][2], max_others.at(calls[i][0])) << calls[i][0];
  }
  for (const char* f : kNewFiles) EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
}

TEST(ResultFiles, AFailedPublicationLeavesNoFileAndResumes) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "clean").exit_code, 0);
  // report.html cannot take its name (a non-empty folder holds it): the last file renamed fails.
  fs::create_directories(dir / "out/report.html/x");
  const auto failed = predict({input}, dir / "out");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("report.html: cannot rename into place"), std::string::npos) << failed.err;
  for (const char* f : kOriginalFiles) EXPECT_FALSE(fs::exists(dir / "out" / f)) << f;
  for (const char* f : {"sequence_summary.tsv", "chunks.tsv", "virus.fna", "run.json"})
    EXPECT_FALSE(fs::exists(dir / "out" / f)) << f;
  fs::remove_all(dir / "out/report.html");
  const auto resumed = predict({input}, dir / "out", {"--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  for (const char* f : {"prediction_results.txt", "prediction_results_highestscore.csv",
                        "sequence_summary.tsv", "chunks.tsv", "virus.fna"})
    EXPECT_EQ(test::read_file(dir / "clean" / f), test::read_file(dir / "out" / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "out/.virnucpro-run"));
}

// ---- sequence_summary.tsv, chunks.tsv, virus.fna

class Outputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir;
    const auto r = predict(two_inputs(), *dir_ / "out", {"--min-length", "100"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    err_ = new std::string(r.err);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete err_;
  }
  static fs::path out(const std::string& name) { return *dir_ / "out" / name; }
  static test::ScratchDir* dir_;
  static std::string* err_;
};
test::ScratchDir* Outputs::dir_ = nullptr;
std::string* Outputs::err_ = nullptr;

TEST_F(Outputs, SummaryHasTheSpecColumnsOneRowPerRecord) {
  const Table t = test::read_tsv(out("sequence_summary.tsv"));
  ASSERT_EQ(t[0], (std::vector<std::string>{"seq_id", "length", "chunks", "scored_chunks", "viral_chunks",
                                            "viral_fraction", "virus_score", "call", "source"}));
  ASSERT_EQ(t.size(), 1 + 8 + 40u);
  const auto messy = read_fasta(test::data_path("preprocess/messy.fa"));
  std::set<std::string> calls;
  for (std::size_t i = 1; i < t.size(); ++i) {
    const auto& row = t[i];
    ASSERT_EQ(row.size(), 9u) << i;
    calls.insert(row[7]);
    EXPECT_EQ(row[8], two_inputs()[i <= 8 ? 0 : 1]) << row[0];
    if (i <= 8) {
      EXPECT_EQ(row[0], messy[i - 1].first.substr(0, messy[i - 1].first.find(' ')));
    }
    const auto scored = std::stoul(row[3]), viral = std::stoul(row[4]);
    if (row[7] == "too_short") {
      EXPECT_LT(std::stoul(row[1]), 100u) << row[0];
      // Still chunked and scored (the original's files keep it); no call counts its chunks.
      EXPECT_GE(std::stoul(row[2]), 1u) << row[0];
      EXPECT_EQ(row[3] + row[4] + row[5] + row[6], "00NANA") << row[0];
    } else if (scored == 0) {
      EXPECT_EQ(row[7], "no_valid_frame");
    } else {
      EXPECT_FLOAT_EQ(std::stof(row[5]), static_cast<float>(viral) / static_cast<float>(scored)) << row[0];
      EXPECT_EQ(row[7], 2 * viral >= scored ? "virus" : "others") << row[0];
    }
  }
  EXPECT_EQ(calls, (std::set<std::string>{"virus", "others", "too_short"}));
}

// chunks.tsv against the original's chunks (the preprocess golden) and frames (prediction_results.txt).
TEST_F(Outputs, ChunksHoldCoordinatesBestFrameAndScore) {
  const Table chunks = test::read_tsv(out("chunks.tsv"));
  ASSERT_EQ(chunks[0], (std::vector<std::string>{"seq_id", "chunk", "start", "end", "frame", "virus_score"}));
  const Table summary = test::read_tsv(out("sequence_summary.tsv"));
  std::size_t expected_rows = 0;
  for (std::size_t i = 1; i < summary.size(); ++i) expected_rows += std::stoul(summary[i][2]);
  ASSERT_EQ(chunks.size(), 1 + expected_rows);
  // The best frame of each chunk by P(virus), the first on ties.
  std::map<std::string, std::pair<std::string, std::string>> best;  // chunk id -> (tag, score2)
  const Table frames = test::read_tsv(out("prediction_results.txt"));
  for (std::size_t i = 1; i < frames.size(); ++i) {
    const std::string chunk = frames[i][0].substr(0, frames[i][0].size() - 2);
    auto it = best.find(chunk);
    if (it == best.end() || std::stod(frames[i][3]) > std::stod(it->second.second))
      best[chunk] = {frames[i][0].substr(frames[i][0].size() - 2), frames[i][3]};
  }
  const Table golden = test::read_tsv(test::data_path("preprocess/coding.chunks500.tsv"));
  std::map<std::string, std::string> golden_chunks;
  for (const auto& row : golden) golden_chunks[row[0]] = row[1];
  std::map<std::string, std::string> sequences;
  for (const auto& [id, seq] : read_fasta(test::data_path("preprocess/coding.fa"))) sequences[id] = seq;
  std::size_t checked = 0, unscored = 0;
  for (std::size_t i = 1; i < chunks.size(); ++i) {
    const auto& row = chunks[i];
    const std::string chunk_id = row[0] + "_chunk_" + row[1];
    if (row[0] != "dup" && best.count(chunk_id)) {
      EXPECT_EQ(row[4], best[chunk_id].first) << chunk_id;
      EXPECT_EQ(row[5], best[chunk_id].second) << chunk_id;
    } else if (!best.count(chunk_id)) {
      EXPECT_EQ(row[4] + row[5], "NANA") << chunk_id;
      ++unscored;
    }
    if (sequences.count(row[0])) {
      const std::size_t start = std::stoul(row[2]), end = std::stoul(row[3]);
      EXPECT_EQ(sequences[row[0]].substr(start - 1, end - start + 1), golden_chunks.at(chunk_id)) << chunk_id;
      ++checked;
    }
  }
  EXPECT_EQ(checked, golden.size());
  EXPECT_EQ(unscored, 0u);  // every chunk of these records has a stop-free frame (NA: a test of its own)
}

TEST_F(Outputs, VirusFastaHoldsTheVirusRecordsInInputOrder) {
  const Table summary = test::read_tsv(out("sequence_summary.tsv"));
  std::map<std::string, std::string> sequences;
  for (const auto& in : two_inputs())
    for (const auto& [header, seq] : read_fasta(in)) sequences[header.substr(0, header.find(' '))] = seq;
  std::vector<std::string> want;
  for (std::size_t i = 1; i < summary.size(); ++i)
    if (summary[i][7] == "virus")
      want.push_back(summary[i][0] + " length=" + summary[i][1] + " viral_fraction=" + summary[i][5] +
                     " virus_score=" + summary[i][6]);
  const auto got = read_fasta(out("virus.fna"));
  ASSERT_EQ(got.size(), want.size());
  ASSERT_GT(got.size(), 0u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i]);
    EXPECT_EQ(got[i].second, sequences.at(want[i].substr(0, want[i].find(' '))));
  }
  // Wrapped at 60 columns.
  std::istringstream lines(test::read_file(out("virus.fna")));
  for (std::string line; std::getline(lines, line);)
    if (!line.starts_with('>')) {
      EXPECT_LE(line.size(), 60u);
    }
}

// ---- the end-of-run summary and run.json

TEST_F(Outputs, CountsOnStderrAndInRunJson) {
  const Table summary = test::read_tsv(out("sequence_summary.tsv"));
  std::map<std::string, int> by_call;
  for (std::size_t i = 1; i < summary.size(); ++i) ++by_call[summary[i][7]];
  const json counts = json::parse(test::read_file(out("run.json"))).at("counts");
  EXPECT_EQ(counts.at("sequences"), 48);
  EXPECT_EQ(counts.at("virus"), by_call["virus"]);
  EXPECT_EQ(counts.at("others"), by_call["others"]);
  EXPECT_EQ(counts.at("too_short"), 2);
  EXPECT_EQ(counts.at("no_valid_frame"), 0);
  char percent[32];
  std::snprintf(percent, sizeof percent, "%.1f", 100.0 * by_call["virus"] / 48);
  const std::string line = "48 sequences: " + std::to_string(by_call["virus"]) + " virus (" + percent +
                           " %), " + std::to_string(by_call["others"]) +
                           " others, 2 not scored (shorter than --min-length) → " + (*dir_ / "out").string();
  EXPECT_NE(err_->find(line), std::string::npos) << *err_;
}

TEST(ResultFiles, NotScoredReasonsAreCountedApart) {
  test::ScratchDir dir;
  test::write_file(dir / "in.fa", ">stops\nCTAGGCTTTAGCTAA\n>short\nATG\n");
  const auto r = predict({(dir / "in.fa").string()}, dir / "out", {"--min-length", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(
      r.err.find("2 sequences: 0 virus (0.0 %), 0 others, 2 not scored (1 no stop-free frame, 1 shorter "
                 "than --min-length) → "),
      std::string::npos)
      << r.err;
  const std::string path = (dir / "in.fa").string();
  EXPECT_EQ(test::read_file(dir / "out/sequence_summary.tsv"),
            "seq_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_fraction\tvirus_score\tcall\tsource\n"
            "stops\t15\t1\t0\t0\tNA\tNA\tno_valid_frame\t" +
                path + "\n" + "short\t3\t1\t0\t0\tNA\tNA\ttoo_short\t" + path + "\n");
  // The short record is still scored (the original's files never depend on the filters): its chunk
  // has a row; only its call says too_short.
  const std::string chunks = test::read_file(dir / "out/chunks.tsv");
  EXPECT_TRUE(
      chunks.starts_with("seq_id\tchunk\tstart\tend\tframe\tvirus_score\nstops\t1\t1\t15\tNA\tNA\n"
                         "short\t1\t1\t3\t"))
      << chunks;
  EXPECT_EQ(test::read_file(dir / "out/virus.fna"), "");
}

// ---- --min-score and --min-length

TEST(Filters, MinScoreDecidesTheChunksAndLeavesTheOriginalFilesAlone) {
  test::ScratchDir dir;
  const auto inputs = two_inputs();
  ASSERT_EQ(predict(inputs, dir / "default").exit_code, 0);
  const auto r = predict(inputs, dir / "strict", {"--min-score", "0.6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : kOriginalFiles)
    EXPECT_EQ(test::read_file(dir / "default" / f), test::read_file(dir / "strict" / f)) << f;
  // Viral chunks per record: chunks whose best P(virus) >= 0.6, read off chunks.tsv.
  const Table chunks = test::read_tsv(dir / "strict/chunks.tsv");
  const Table summary = test::read_tsv(dir / "strict/sequence_summary.tsv");
  std::size_t row = 1, differs = 0;
  const Table summary_default = test::read_tsv(dir / "default/sequence_summary.tsv");
  for (std::size_t i = 1; i < summary.size(); ++i) {
    std::size_t viral = 0;
    for (std::size_t k = 0; k < std::stoul(summary[i][2]); ++k, ++row)
      if (chunks[row][5] != "NA" && std::stod(chunks[row][5]) >= 0.6) ++viral;
    EXPECT_EQ(std::stoul(summary[i][4]), viral) << summary[i][0];
    differs += summary[i][4] != summary_default[i][4];
  }
  EXPECT_GT(differs, 0u);  // the threshold changed some calls
  EXPECT_EQ(json::parse(test::read_file(dir / "strict/run.json")).at("settings").at("min_score"), 0.6);
  // The default is the original rule: a chunk is viral when its Is_Virus is True.
  const Table highest = test::read_tsv(dir / "default/prediction_results_highestscore.csv");
  std::map<std::string, int> true_chunks;
  for (std::size_t i = 1; i < highest.size(); ++i)
    if (highest[i][1] == "True") ++true_chunks[highest[i][0].substr(0, highest[i][0].rfind("_chunk_"))];
  for (std::size_t i = 1; i < summary_default.size(); ++i)
    if (summary_default[i][0] != "dup") {
      EXPECT_EQ(std::stoi(summary_default[i][4]), true_chunks[summary_default[i][0]])
          << summary_default[i][0];
    }
}

TEST(Filters, MinLengthRecordsAreReportedTooShortAndTheOriginalFilesStay) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ASSERT_EQ(predict({input}, dir / "all").exit_code, 0);
  const auto r = predict({input}, dir / "long", {"--min-length", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> too_short;
  for (const auto& [id, seq] : read_fasta(input))
    if (seq.size() < 1000) too_short.insert(id);
  ASSERT_GT(too_short.size(), 0u);
  const Table summary = test::read_tsv(dir / "long/sequence_summary.tsv");
  for (std::size_t i = 1; i < summary.size(); ++i)
    EXPECT_EQ(summary[i][7] == "too_short", too_short.count(summary[i][0]) == 1) << summary[i][0];
  // SPEC §4: the original's two files never depend on the filters.
  for (const char* f : {"prediction_results.txt", "prediction_results_highestscore.csv"})
    EXPECT_EQ(test::read_file(dir / "long" / f), test::read_file(dir / "all" / f)) << f;
  const auto virus = read_fasta((dir / "long/virus.fna").string());
  for (const auto& [id, seq] : virus) EXPECT_EQ(too_short.count(id.substr(0, id.find(' '))), 0u) << id;
  const json counts = json::parse(test::read_file(dir / "long/run.json")).at("counts");
  EXPECT_EQ(counts.at("too_short"), too_short.size());
}

// A resume under other filters would mix two call rules: refused.
TEST(Filters, ResumeWithOtherFiltersIsRefused) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  ::setenv("VIRNUCPRO_SEGMENT_FRAMES", "10", 1);
  ::setenv("VIRNUCPRO_TEST_KILL_AT", "2", 1);
  EXPECT_EQ(predict({input}, dir / "out", {"--min-score", "0.5"}).exit_code, 128 + 9);
  ::unsetenv("VIRNUCPRO_TEST_KILL_AT");
  EXPECT_EQ(predict({input}, dir / "out", {"--resume", "--min-score", "0.7"}).exit_code, 5);
  EXPECT_EQ(predict({input}, dir / "out", {"--resume", "--min-score", "0.5", "--min-length", "9"}).exit_code,
            5);
  const auto resumed = predict({input}, dir / "out", {"--resume", "--min-score", "0.5"});
  ::unsetenv("VIRNUCPRO_SEGMENT_FRAMES");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

TEST(Filters, BadValuesAreUsageErrors) {
  test::ScratchDir dir;
  const std::string input = test::data_path("preprocess/coding.fa").string();
  EXPECT_EQ(predict({input}, dir / "a", {"--min-score", "1.5"}).exit_code, 2);
  EXPECT_EQ(predict({input}, dir / "b", {"--min-score", "high"}).exit_code, 2);
  EXPECT_EQ(predict({input}, dir / "c", {"--min-length", "-3"}).exit_code, 2);
}

// ---- merge: the shards' chunks.tsv and virus.fna interleaved as one run writes them, and a report

TEST(Merge, ShardsGiveTheNewFilesOfASingleRun) {
  test::ScratchDir dir;
  const auto inputs = two_inputs();
  const std::vector<std::string> options = {"--min-score", "0.55", "--min-length", "100"};
  ASSERT_EQ(predict(inputs, dir / "single", options).exit_code, 0);
  std::vector<std::string> merge = {"merge"};
  for (int i = 0; i < 3; ++i) {
    const fs::path shard = dir / ("shard_" + std::to_string(i));
    auto extra = options;
    extra.insert(extra.end(), {"--shard", std::to_string(i) + "/3"});
    ASSERT_EQ(predict(inputs, shard, extra).exit_code, 0);
    merge.push_back(shard.string());
  }
  merge.insert(merge.end(), {"-o", (dir / "merged").string()});
  const auto r = test::run_virnucpro(merge);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"sequence_summary.tsv", "chunks.tsv", "virus.fna"})
    EXPECT_EQ(test::read_file(dir / "single" / f), test::read_file(dir / "merged" / f)) << f;
  const auto counts = [&](const char* run) {
    json c = json::parse(test::read_file(dir / run / "run.json")).at("counts");
    return std::vector<json>{c.at("virus"), c.at("others"), c.at("too_short"), c.at("no_valid_frame")};
  };
  EXPECT_EQ(counts("single"), counts("merged"));
  // The same page but for the output folder it names.
  std::string single = test::read_file(dir / "single/report.html"),
              merged = test::read_file(dir / "merged/report.html");
  const auto without = [](std::string html, const std::string& what) {
    for (auto p = html.find(what); p != std::string::npos; p = html.find(what)) html.erase(p, what.size());
    return html;
  };
  EXPECT_EQ(without(single, (dir / "single").string()), without(merged, (dir / "merged").string()));
  // A shard whose virus.fna lost a record is refused.
  test::write_file(dir / "shard_1/virus.fna", "");
  merge.insert(merge.end(), "--force");
  const auto refused = test::run_virnucpro(merge);
  EXPECT_EQ(refused.exit_code, 5);
  EXPECT_NE(refused.err.find("shard_1/virus.fna was changed or cut"), std::string::npos) << refused.err;
}

// ---- report.html

TEST_F(Outputs, ReportIsSelfContained) {
  const std::string html = test::read_file(out("report.html"));
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  // The only URL is the SVG namespace, which is never fetched.
  std::size_t urls = 0;
  for (auto p = html.find("://"); p != std::string::npos; p = html.find("://", p + 1)) {
    EXPECT_EQ(html.compare(p - 4, 27, "http://www.w3.org/2000/svg\""), 0) << html.substr(p - 10, 60);
    ++urls;
  }
  EXPECT_EQ(urls, 3u);  // histogram, scatter, tracks
  const json counts = json::parse(test::read_file(out("run.json"))).at("counts");
  EXPECT_NE(html.find("<div class=\"n\">" + std::to_string(counts.at("virus").get<int>()) + "</div>"),
            std::string::npos);
  EXPECT_NE(html.find("<text class=\"label\" x=\"70.0\" y=\"40.0\">cds_"), std::string::npos);  // a track
}

TEST(ResultFiles, ReportEscapesIds) {
  test::ScratchDir dir;
  const std::string seq(1200, 'A');
  test::write_file(dir / "in.fa", ">a<b>&\"c'\n" + seq + "\n");
  ASSERT_EQ(predict({(dir / "in.fa").string()}, dir / "out").exit_code, 0);
  const std::string html = test::read_file(dir / "out/report.html");
  EXPECT_EQ(html.find("a<b>"), std::string::npos);
  EXPECT_NE(html.find("a&lt;b&gt;&amp;&quot;c&#39;"), std::string::npos);
}

}  // namespace
}  // namespace vnp
