#include "backend.h"

#include "error.h"

namespace perceiver {

Backend* backend_for(Device device) {
  if (device.type == DeviceType::CPU) return cpu_backend();
  throw_value("device " + device.str() + " is not available in this build");
}

}  // namespace perceiver
