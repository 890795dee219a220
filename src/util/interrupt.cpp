#include "util/interrupt.h"

#include <csignal>

#include "util/error.h"

namespace vnp {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signal) {
  if (g_signal != 0) std::_Exit(128 + signal);  // a second Ctrl-C does not wait
  g_signal = signal;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

void check_interrupted() {
  if (g_signal == SIGINT)
    throw InterruptedError(ExitCode::kInterrupted, "interrupted (SIGINT); continue with --resume");
  if (g_signal == SIGTERM)
    throw InterruptedError(ExitCode::kTerminated, "terminated (SIGTERM); continue with --resume");
}

}  // namespace vnp
