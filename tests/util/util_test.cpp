#include <gtest/gtest.h>
#include <stdlib.h>

#include "test_util.h"
#include "util/env.h"
#include "util/error.h"

namespace vnp {

TEST(Env, BoolAcceptsTrueFalseOneZero) {
  for (auto [value, expected] : {std::pair{"true", true},
                                 {"TRUE", true},
                                 {"1", true},
                                 {"false", false},
                                 {"False", false},
                                 {"0", false}}) {
    ::setenv("VNP_TEST_BOOL", value, 1);
    EXPECT_EQ(env::get_bool("VNP_TEST_BOOL"), expected) << value;
  }
  ::unsetenv("VNP_TEST_BOOL");
  EXPECT_FALSE(env::get_bool("VNP_TEST_BOOL").has_value());
}

TEST(Env, BoolRejectsOtherValues) {
  ::setenv("VNP_TEST_BOOL", "yes", 1);
  EXPECT_THROW(env::get_bool("VNP_TEST_BOOL"), UsageError);
  ::unsetenv("VNP_TEST_BOOL");
}

TEST(Error, InputErrorNamesFileAndRecord) {
  InputError e("reads.fa", "seq7", "header with no sequence");
  EXPECT_STREQ(e.what(), "reads.fa: record 'seq7': header with no sequence");
  EXPECT_EQ(e.code(), ExitCode::kInput);
}

TEST(Cli, VersionAndHelp) {
  auto v = test::run_virnucpro({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("virnucpro "), std::string::npos);
  auto h = test::run_virnucpro({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("Usage"), std::string::npos);
}

TEST(Cli, UnknownOptionIsUsageError) {
  auto r = test::run_virnucpro({"--no-such-option"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace vnp

#include <bit>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "util/float_format.h"

namespace vnp {

// Every row of numpy's own output (golden/float32_repr.tsv: bits -> str(numpy.float32)).
TEST(FloatFormat, MatchesNumpyFloat32Str) {
  std::ifstream in(test::data_path("golden/float32_repr.tsv"));
  ASSERT_TRUE(in.good());
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    const uint32_t bits = static_cast<uint32_t>(std::stoul(line.substr(0, tab), nullptr, 16));
    const float x = std::bit_cast<float>(bits);
    EXPECT_EQ(format_float32_numpy(x), line.substr(tab + 1)) << "bits " << line.substr(0, tab);
    ++rows;
  }
  EXPECT_GT(rows, 900);
}

TEST(FloatFormat, ShortestRoundTrips) {
  for (float x : {0.1f, 1.0f / 3.0f, -2.5e-7f, 3.4028235e38f}) {
    EXPECT_EQ(std::stof(format_float32_shortest(x)), x);
  }
}

}  // namespace vnp

#include "util/sha256.h"

namespace vnp {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  test::ScratchDir dir;
  test::write_file(dir / "abc", "abc");
  EXPECT_EQ(sha256_file_hex(dir / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(sha256_file_hex(dir / "missing"), InputError);
}

}  // namespace vnp
