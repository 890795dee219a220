#include "engine/backend.h"

#include <mutex>

#include "engine/cpu/cpu_backend.h"
#ifdef VIRNUCPRO_CUDA
#include "engine/cuda/cuda_backend.h"
#endif
#include "util/error.h"

namespace vnp::engine {
namespace {

struct Registry {
  std::mutex mutex;
  BackendFactory cuda;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::backend();
  BackendFactory factory;
  {
    std::lock_guard lock(registry().mutex);
    factory = registry().cuda;
  }
#ifdef VIRNUCPRO_CUDA
  if (!factory) factory = cuda::backend;  // the CUDA build's own backend (engine/cuda/)
#endif
  if (!factory)
    throw DeviceError("device " + device.str() +
                      " requested, but this virnucpro was built without CUDA "
                      "(-DVIRNUCPRO_CUDA=ON); use --device cpu");
  return factory(device.index);
}

int cuda_device_count() {
#ifdef VIRNUCPRO_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

std::string cuda_unavailable_reason() {
#ifdef VIRNUCPRO_CUDA
  return cuda::unavailable_reason();
#else
  return "this virnucpro was built without CUDA (-DVIRNUCPRO_CUDA=ON)";
#endif
}

void register_backend(Device::Kind kind, BackendFactory factory) {
  if (kind == Device::Kind::kCpu) throw std::invalid_argument("the CPU backend is built in");
  std::lock_guard lock(registry().mutex);
  registry().cuda = std::move(factory);
}

}  // namespace vnp::engine
