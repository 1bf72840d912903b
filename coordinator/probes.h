#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "httplib.h"

namespace musafarm::coordinator {

// /healthz: 200 while the process serves HTTP at all (liveness).
// /readyz: 503 until `ready` is set (the store is loaded, the farm's state
// recovered and the gRPC port serving), 200 after. Neither needs a token: they
// say nothing about the farm. `ready` is not owned and outlives the routes.
// `standby` (optional; any thread): "" on an active coordinator, else what
// /healthz and /readyz say about the standby (issue 20): both say it, /healthz
// with 200 (the process is alive), /readyz with 503 (send no traffic here).
void AddProbeRoutes(httplib::Server& routes, const std::atomic<bool>* ready,
                    std::function<std::string()> standby = nullptr);

}  // namespace musafarm::coordinator
