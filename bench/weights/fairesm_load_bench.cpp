// Loading a fair-esm ESM-2 checkpoint (.pt, fp16) as `embed`/`predict` do on the CPU: the zip read
// (load_state_dict), the model built from it (Esm2::from_state_dict: fp16 -> fp32 conversion and its
// copies), and, for comparison, every tensor converted straight into an engine::Tensor with
// weights::tensor_to_float32(tensor, out) (what a loader without intermediate copies costs).
// The file comes from make_fairesm_checkpoint.py (650M shape by default). Prints the seconds of
// each stage, best of --repeat runs, from the page cache (one untimed warm-up read first).
//   bench_weights_fairesm FILE [--threads N] [--repeat 3]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "models/esm2.h"
#include "weights/state_dict.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds of the whole process (all threads, user + system): on a shared machine the wall time
// depends on the neighbours, this does not.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.pt [--threads N] [--repeat R]\n", argv[0]);
    return 2;
  }
  const std::string file = argv[1];
  int threads = 0, repeat = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::atoi(argv[i + 1]);
  }
  vnp::engine::set_num_threads(threads);
  std::printf("%s, %d threads\n", file.c_str(), vnp::engine::num_threads());
  (void)vnp::weights::load_state_dict(file);  // warm the page cache
  double best_read = 1e30, best_total = 1e30, best_into = 1e30;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    auto sd = std::make_shared<const vnp::weights::StateDict>(vnp::weights::load_state_dict(file));
    const double read = seconds_since(t0), read_cpu = cpu_seconds() - c0;
    const vnp::models::Esm2 model = vnp::models::Esm2::from_state_dict(sd, std::nullopt);
    const double total = seconds_since(t0), total_cpu = cpu_seconds() - c0;
    const auto t1 = Clock::now();
    const double c1 = cpu_seconds();
    auto direct = std::make_shared<const vnp::weights::StateDict>(vnp::weights::load_state_dict(file));
    std::vector<vnp::engine::Tensor> converted;
    for (const std::string& name : direct->names()) {
      const vnp::weights::Tensor& t = direct->at(name);
      converted.push_back(vnp::engine::Tensor::empty(t.shape, vnp::engine::DType::kF32));
      vnp::weights::tensor_to_float32(t, converted.back().data<float>(), file, name);
    }
    const double into = seconds_since(t1), into_cpu = cpu_seconds() - c1;
    std::printf(
        "run %d: load_state_dict %.3f s (cpu %.3f s); + Esm2::from_state_dict (CPU fp32) = %.3f s (cpu %.3f "
        "s) "
        "(%s); load_state_dict + tensor_to_float32 into engine tensors = %.3f s (cpu %.3f s)\n",
        r, read, read_cpu, total, total_cpu, model.config().describe().c_str(), into, into_cpu);
    best_read = std::min(best_read, read);
    best_total = std::min(best_total, total);
    best_into = std::min(best_into, into);
  }
  std::printf("best: load_state_dict %.3f s, whole model load %.3f s, load + direct conversion %.3f s\n",
              best_read, best_total, best_into);
  return 0;
}
