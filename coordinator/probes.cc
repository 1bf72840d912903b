#include "coordinator/probes.h"

#include <utility>

namespace musafarm::coordinator {

void AddProbeRoutes(httplib::Server& routes, const std::atomic<bool>* ready,
                    std::function<std::string()> standby) {
  auto standby_note = [standby = std::move(standby)]() -> std::string {
    return standby ? standby() : std::string();
  };
  routes.Get("/healthz", [standby_note](const httplib::Request&, httplib::Response& res) {
    const std::string note = standby_note();
    res.set_content(note.empty() ? "ok\n" : "ok: " + note + "\n", "text/plain; charset=utf-8");
  });
  routes.Get("/readyz", [ready, standby_note](const httplib::Request&, httplib::Response& res) {
    if (ready->load(std::memory_order_acquire)) {
      res.set_content("ready\n", "text/plain; charset=utf-8");
      return;
    }
    res.status = 503;
    const std::string note = standby_note();
    res.set_content(note.empty() ? "recovering: the farm's state is still being loaded\n"
                                 : note + "\n",
                    "text/plain; charset=utf-8");
  });
}

}  // namespace musafarm::coordinator
