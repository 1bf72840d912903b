#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "httplib.h"

namespace musafarm::coordinator {

// GET /metrics in Prometheus's text format. `authorize` decides whether the
// request may read it (always OK with --metrics-public; else a token allowed
// to read, see http_auth.h); `render` returns the text (Unavailable while the
// coordinator recovers). Both run on the HTTP thread; `render` hops to the
// core loop itself.
void AddMetricsRoute(httplib::Server& routes,
                     std::function<absl::Status(const httplib::Request&)> authorize,
                     std::function<absl::StatusOr<std::string>()> render);

}  // namespace musafarm::coordinator
