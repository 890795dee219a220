// virnucpro: entry point. Parses the command line, runs one subcommand, and turns every
// vnp::Error into one line on stderr and the exit code of SPEC.md §8.
#include <algorithm>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "cli/run_options.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/version.h"

namespace vnp::cli {

std::vector<RegisteredCommand>& registered_commands() {
  static std::vector<RegisteredCommand> commands;
  return commands;
}

CommandRegistrar::CommandRegistrar(const char* name, CommandSetup setup) {
  registered_commands().push_back({name, setup});
}

void add_global_options(CLI::App& sub, GlobalOptions& global) {
  sub.add_option(
         "-t,--threads", global.threads,
         "CPU threads (default: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the CPUs this process may use)")
      ->check(thread_count_check());
  sub.add_option("--log-level", global.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  sub.add_flag("--quiet,-q", global.quiet, "Only warnings and errors");
}

int thread_count(const GlobalOptions& global) {
  static const ThreadDefault resolved = [&] {
    if (global.threads > 0) return ThreadDefault{global.threads, "--threads"};
    return default_threads();
  }();
  static const bool logged = [] {
    log::info("{} thread{} ({})", resolved.threads, resolved.threads == 1 ? "" : "s", resolved.source);
    return true;
  }();
  (void)logged;
  return resolved.threads;
}

}  // namespace vnp::cli

int main(int argc, char** argv) {
  using namespace vnp;
  CLI::App app{"virnucpro: viral / non-viral classification of DNA sequences (VirNucPro in C++)"};
  app.set_version_flag("-V,--version", cli::version_text(), "Print the version and build, then exit");
  app.require_subcommand(1);
  cli::GlobalOptions global;
  for (int i = 0; i < argc; ++i) global.command_line += (i ? " " : "") + std::string(argv[i]);
  cli::add_global_options(app, global);

  auto& commands = cli::registered_commands();
  std::sort(commands.begin(), commands.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, cli::CommandAction>> actions;
  for (auto& c : commands) {
    auto action = c.setup(app, global);
    CLI::App* sub = app.get_subcommands({}).back();
    cli::add_global_options(*sub, global);
    actions.emplace_back(sub, std::move(action));
  }

  try {
    app.parse(argc, argv);
    log::init(global.log_level, global.quiet);
    install_interrupt_handlers();
    for (auto& [sub, action] : actions)
      if (sub->parsed()) action();
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error (SPEC.md §8).
    if (const std::string hint = cli::did_you_mean(app, e); !hint.empty()) {
      std::cerr << "virnucpro: error: " << hint << '\n';
      return static_cast<int>(ExitCode::kUsage);
    }
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << "virnucpro: error: " << e.what() << " (see --help)\n";
    return static_cast<int>(ExitCode::kUsage);
  } catch (const Error& e) {
    log::end_partial_line();
    std::cerr << "virnucpro: error: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    log::end_partial_line();
    std::cerr << "virnucpro: error: out of host memory\n";
    return static_cast<int>(ExitCode::kDevice);
  } catch (const std::exception& e) {
    log::end_partial_line();
    std::cerr << "virnucpro: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
