#pragma once

// Certificate renewal in a running agent (issue 10, point 2): once 2/3 of its
// certificate's lifetime has passed, the agent makes a new key and CSR and
// calls RenewCertificate on a separate unary call, presenting its current
// certificate. Its stream and attempts are not touched: the new material goes
// to disk (for restarts) and to the TlsMaterialSource, from which the
// coordinator link builds a new channel at its next (re)connect.

#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/enrollment_client.h"
#include "agent/tls_material_source.h"
#include "common/tls_channel.h"

namespace musafarm::agent {

// Renews the certificate in `source` on its own thread, retrying a failed
// renewal sooner as the expiry nears. Once the certificate has expired
// unrenewed, the coordinator refuses it for good: it logs, once, what to do
// (enrol this host again with a new join token).
class CertRenewer {
 public:
  struct Options {
    // Where to renew: the active coordinator's host:port, asked at each
    // renewal (the link follows failovers).
    std::function<std::string()> coordinator;
    AgentPkiPaths paths;      // where the renewed key and certificate are written
    absl::Duration max_retry = absl::Seconds(30);
    absl::Duration timeout = absl::Seconds(30);  // per RenewCertificate call
  };

  // `source` is not owned and must outlive this.
  CertRenewer(Options options, TlsMaterialSource* source)
      : options_(std::move(options)), source_(source) {}
  ~CertRenewer() { Stop(); }
  CertRenewer(const CertRenewer&) = delete;
  CertRenewer& operator=(const CertRenewer&) = delete;

  void Start();
  // Wakes the thread and joins it; a call in flight ends at its deadline.
  void Stop();

 private:
  void Run();

  const Options options_;
  TlsMaterialSource* const source_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace musafarm::agent
