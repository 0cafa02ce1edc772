// File: wire/synic.cc — names of hypercall status codes (spec 1.7). See synic.h.
#include "wire/synic.h"

namespace uvmbus::wire {

std::string_view HvStatusName(HvStatus status) {
  switch (status) {
    case HvStatus::kSuccess:
      return "HV_STATUS_SUCCESS";
    case HvStatus::kInvalidHypercallCode:
      return "HV_STATUS_INVALID_HYPERCALL_CODE";
    case HvStatus::kInvalidHypercallInput:
      return "HV_STATUS_INVALID_HYPERCALL_INPUT";
    case HvStatus::kInvalidAlignment:
      return "HV_STATUS_INVALID_ALIGNMENT";
    case HvStatus::kInvalidParameter:
      return "HV_STATUS_INVALID_PARAMETER";
    case HvStatus::kAccessDenied:
      return "HV_STATUS_ACCESS_DENIED";
    case HvStatus::kInvalidPartitionState:
      return "HV_STATUS_INVALID_PARTITION_STATE";
    case HvStatus::kInsufficientMemory:
      return "HV_STATUS_INSUFFICIENT_MEMORY";
    case HvStatus::kInvalidPortId:
      return "HV_STATUS_INVALID_PORT_ID";
    case HvStatus::kInvalidConnectionId:
      return "HV_STATUS_INVALID_CONNECTION_ID";
    case HvStatus::kInsufficientBuffers:
      return "HV_STATUS_INSUFFICIENT_BUFFERS";
    case HvStatus::kNotAcknowledged:
      return "HV_STATUS_NOT_ACKNOWLEDGED";
  }
  return "HV_STATUS_UNKNOWN";
}

}  // namespace uvmbus::wire
