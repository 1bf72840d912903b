#include "coordinator/probes.h"

namespace musafarm::coordinator {

void AddProbeRoutes(httplib::Server& routes, const std::atomic<bool>* ready) {
  routes.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  routes.Get("/readyz", [ready](const httplib::Request&, httplib::Response& res) {
    if (ready->load(std::memory_order_acquire)) {
      res.set_content("ready\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content("recovering: the farm's state is still being loaded\n",
                      "text/plain; charset=utf-8");
    }
  });
}

}  // namespace musafarm::coordinator
