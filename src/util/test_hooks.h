#pragma once
// Test hooks (VIRNUCPRO_TEST_KILL_AT, VIRNUCPRO_TEST_OOM_ABOVE_TOKENS, VIRNUCPRO_SEGMENT_FRAMES, ...):
// environment variables that let the tests kill a run at a chosen point, fake an out-of-memory error
// or shrink the resume segments. They are injected, not configured: only the `virnucpro-testing`
// program (the test build, src/util/test_hooks_enable.cpp linked in) reads them. The `virnucpro`
// program a user runs never does, so no variable in a user's environment changes their results.
#include <cstdint>
#include <optional>
#include <string>

namespace vnp {

// Whether this program honours test hooks (true only in virnucpro-testing).
bool test_hooks_enabled();
// Called once, at start-up, by virnucpro-testing.
void enable_test_hooks();

// The hook's value; nothing when unset, empty or when hooks are off (a release program).
std::optional<std::string> test_hook(const char* name);
// A hook holding a positive count; a value that is not one is a UsageError naming the variable.
std::optional<std::uint64_t> test_hook_count(const char* name);

}  // namespace vnp
