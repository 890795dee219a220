#pragma once
// Error checking for CUDA runtime calls: every failure becomes a vnp::DeviceError (exit code 4) naming
// the call and the device's own error string. Host code only.
#include <cuda_runtime_api.h>

#include <string>

#include "util/error.h"

namespace vnp::engine::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* what) {
  throw DeviceError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                    cudaGetErrorString(status) + ")");
}

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_cuda_error(status, what);
}

// After a kernel launch: launch-configuration errors are reported at once, faults at the next sync.
inline void check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
}

}  // namespace vnp::engine::cuda
