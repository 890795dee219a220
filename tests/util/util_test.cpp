#include <gtest/gtest.h>
#include <stdlib.h>

#include "test_util.h"
#include "util/env.h"
#include "util/error.h"

namespace vnp {

TEST(Env, BoolAcceptsTrueFalseOneZero) {
  for (auto [value, expected] : {std::pair{"true", true}, {"TRUE", true}, {"1", true}, {"false", false},
                                 {"False", false}, {"0", false}}) {
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
