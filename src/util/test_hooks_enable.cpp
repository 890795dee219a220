// Linked into virnucpro-testing only (src/cli/CMakeLists.txt): turns the test hooks on before main().
#include "util/test_hooks.h"

namespace {

const bool kHooksOn = (vnp::enable_test_hooks(), true);

}  // namespace
