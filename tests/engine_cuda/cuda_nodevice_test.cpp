// Runs everywhere (no "gpu" label): asking for a GPU that is not there is a DeviceError (exit code 4)
// naming the device, never a crash; a binary built with CUDA still computes on the CPU.
#include <gtest/gtest.h>

#include "engine/backend.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/ops.h"
#include "util/error.h"

namespace vnp::engine {
namespace {

std::string device_error_of(Device device) {
  try {
    Tensor::empty({4}, DType::kF32, device);
  } catch (const DeviceError& e) {
    EXPECT_EQ(e.code(), ExitCode::kDevice);
    return e.what();
  }
  return "";
}

TEST(CudaNoDevice, MissingGpuIsADeviceError) {
  EXPECT_EQ(cuda_device_count(), cuda::device_count());  // the engine's --device auto sees the same
  if (cuda::device_count() > 0) {
    // With a GPU: an ordinal past the last one is the error.
    const std::string message = device_error_of(Device::cuda(cuda::device_count() + 7));
    EXPECT_NE(message.find("CUDA device(s)"), std::string::npos) << message;
    return;
  }
  const std::string message = device_error_of(Device::cuda(0));
  EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
  EXPECT_NE(message.find("no CUDA device"), std::string::npos) << message;
  EXPECT_STRNE(cuda::unavailable_reason(), "");
}

TEST(CudaNoDevice, CpuStillWorksInACudaBuild) {
  Tensor x = Tensor::from_floats({1, 2, 3, 4}, {2, 2});
  Tensor y = ops::linear(x, x);
  EXPECT_EQ(y.to_floats(), (std::vector<float>{5, 11, 11, 25}));
}

}  // namespace
}  // namespace vnp::engine
