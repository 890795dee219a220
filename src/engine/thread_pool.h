#pragma once
// The one CPU thread pool (--threads). Work is cut into chunks whose boundaries depend only on the
// problem size and the grain, never on the number of threads, and no reduction is ever split across
// chunks: so every result is bit-identical whatever the thread count. BLAS is called single-threaded
// from inside the chunks (OpenBLAS's own threads stay off) for the same reason.
#include <cstdint>
#include <functional>

namespace vnp::engine {

// Number of threads the CPU kernels use (n <= 0: all hardware threads). Default: 1 until set.
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) for the chunks [0, grain), [grain, 2·grain), ... of [0, n), spread over the
// pool (the calling thread works too). Returns when all are done; rethrows the first exception.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace vnp::engine
