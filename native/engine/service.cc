#include "service.h"

#include <algorithm>

#include "picker.h"

namespace fulcrum {

Service::Service(ServiceSpec spec, const BackendStates* states)
    : spec_(std::move(spec)), states_(states), picker_(make_picker(spec_)) {}

Service::~Service() = default;

int Service::pick(const uint32_t* tried, uint32_t tried_count) const {
  auto is_up = [this](uint32_t index) {
    return states_->takes_new_connections(spec_.backends[index].slot);
  };
  auto untried = [&](uint32_t index) {
    return is_up(index) && std::find(tried, tried + tried_count, index) == tried + tried_count;
  };
  // First choice: an up backend this client has not tried. Failing that, an
  // up backend again (a single backend restarting is worth a second try, as
  // HAProxy's retries do).
  const bool retry = tried_count > 0;
  int index = picker_->pick(PickFilter{untried}, retry);
  if (index < 0 && retry) index = picker_->pick(PickFilter{is_up}, retry);
  return index;
}

}  // namespace fulcrum
