#include "coordinator/metrics_route.h"

#include <utility>

#include "coordinator/http_auth.h"

namespace musafarm::coordinator {

void AddMetricsRoute(httplib::Server& routes,
                     std::function<absl::Status(const httplib::Request&)> authorize,
                     std::function<absl::StatusOr<std::string>()> render) {
  routes.Get("/metrics", [authorize = std::move(authorize), render = std::move(render)](
                             const httplib::Request& req, httplib::Response& res) {
    if (absl::Status s = authorize(req); !s.ok()) return WriteError(res, s);
    absl::StatusOr<std::string> text = render();
    if (!text.ok()) return WriteError(res, text.status());
    res.set_content(*text, "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace musafarm::coordinator
