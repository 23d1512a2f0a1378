#include "connection_budget.h"

#include <algorithm>

namespace fulcrum {

namespace {

uint32_t resume_point(uint32_t max) {
  if (max == 0) return 0;
  const uint32_t gap = std::max<uint32_t>(8, max / 10);
  return max > gap ? max - gap : 0;
}

}  // namespace

ConnectionBudget::ConnectionBudget(uint32_t max_connections)
    : max_(max_connections), resume_at_(resume_point(max_connections)) {}

}  // namespace fulcrum
