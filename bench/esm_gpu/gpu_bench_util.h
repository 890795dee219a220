#pragma once
// What the GPU benchmarks share: the spec-sheet peaks that MFU is measured against, and wall-clock time.
#include <chrono>

namespace vnp::bench {

constexpr double kPeakDenseHalf = 989e12;  // H100/H200 SXM bf16/fp16 dense tensor peak
constexpr double kPeakFp32 = 67e12;        // H100/H200 SXM fp32 (no tensor cores)
constexpr double kPeakDenseFp8 = 1979e12;  // H100/H200 SXM fp8 dense tensor peak

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace vnp::bench
