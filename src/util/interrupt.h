#pragma once
// Ctrl-C and SIGTERM stop a long run cleanly: the handler only raises a flag; the pipeline checks it
// between records and segments and throws InterruptedError, so that temporary files are removed by
// their destructors and the resume journal stays (exit 130 / 143, SPEC §8).
namespace vnp {

void install_interrupt_handlers();
// Throws InterruptedError if SIGINT or SIGTERM arrived.
void check_interrupted();

}  // namespace vnp
