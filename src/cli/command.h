#pragma once
// Subcommands register themselves here: each src/cli/<name>.cpp defines a setup function
// and VNP_REGISTER_COMMAND(setup). main.cpp adds them to the CLI11 app in name order.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace vnp::cli {

// Options every subcommand accepts (set before the subcommand's callback runs).
struct GlobalOptions {
  int threads = 0;  // 0 = the default (run_options.h default_threads)
  std::string log_level = "info";
  bool quiet = false;
  std::string command_line;  // argv joined by spaces, for run.json
};

// Adds one subcommand to `app` and returns the action that runs it; main() calls the action
// (after logging is set up) when that subcommand was given. Actions may throw vnp::Error.
using CommandAction = std::function<void()>;
using CommandSetup = CommandAction (*)(CLI::App& app, const GlobalOptions& global);

struct CommandRegistrar {
  CommandRegistrar(const char* name, CommandSetup setup);
};

struct RegisteredCommand {
  std::string name;
  CommandSetup setup;
};
std::vector<RegisteredCommand>& registered_commands();

// Adds -t/--threads, --log-level and --quiet to a subcommand (they are accepted before or after it).
void add_global_options(CLI::App& sub, GlobalOptions& global);

// Resolved thread count: --threads, or default_threads() (run_options.h). Logs the count and where it
// came from once.
int thread_count(const GlobalOptions& global);

}  // namespace vnp::cli

#define VNP_CONCAT_INNER(a, b) a##b
#define VNP_CONCAT(a, b) VNP_CONCAT_INNER(a, b)
#define VNP_REGISTER_COMMAND(name, setup) \
  static const ::vnp::cli::CommandRegistrar VNP_CONCAT(vnp_command_, __LINE__)(name, setup)
