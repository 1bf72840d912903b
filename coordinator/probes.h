#pragma once

#include <atomic>

#include "httplib.h"

namespace musafarm::coordinator {

// /healthz: 200 while the process serves HTTP at all (liveness).
// /readyz: 503 until `ready` is set (the store is loaded, the farm's state
// recovered and the gRPC port serving), 200 after. Neither needs a token: they
// say nothing about the farm. `ready` is not owned and outlives the routes.
void AddProbeRoutes(httplib::Server& routes, const std::atomic<bool>* ready);

}  // namespace musafarm::coordinator
