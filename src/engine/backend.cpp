#include "engine/backend.h"

#include "engine/cpu/cpu_backend.h"
#ifdef VIRNUCPRO_CUDA
#include "engine/cuda/cuda_backend.h"
#endif
#include "util/error.h"

namespace vnp::engine {
Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::backend();
#ifdef VIRNUCPRO_CUDA
  return cuda::backend(device.index);  // the CUDA build's own backend (engine/cuda/)
#else
  throw DeviceError("device " + device.str() +
                    " requested, but this virnucpro was built without CUDA "
                    "(-DVIRNUCPRO_CUDA=ON); use --device cpu");
#endif
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

}  // namespace vnp::engine
