#include "agent/cert_renewer.h"

#include <algorithm>
#include <string>

#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/pki.h"

namespace musafarm::agent {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("cert_renewer");
  return log;
}

}  // namespace

void CertRenewer::Start() { thread_ = std::thread([this] { Run(); }); }

void CertRenewer::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void CertRenewer::Run() {
  bool told_expired = false;
  while (!stop_.HasBeenNotified()) {
    const ChannelTls tls = source_->Get(nullptr);
    absl::StatusOr<pki::CertInfo> cert = pki::ParseCertificate(tls.cert_pem);
    if (!cert.ok()) {
      Log()->error("cannot read this agent's certificate, so it is never renewed: {}",
                   std::string(cert.status().message()));
      return;
    }
    const absl::Duration lifetime = cert->not_after - cert->not_before;
    const absl::Time renew_at = cert->not_before + lifetime * 2 / 3;
    absl::Time now = absl::Now();
    if (now < renew_at) {
      Log()->debug("certificate serial={} valid until {}; renewing at {}", cert->serial_hex,
                   FormatUtc(cert->not_after), FormatUtc(renew_at));
      stop_.WaitForNotificationWithTimeout(renew_at - now);
      continue;
    }
    ChannelTls renewed;
    absl::StatusOr<pki::CertInfo> fresh = RenewAgentCertificate(
        options_.coordinator(), tls, options_.paths, options_.timeout, &renewed);
    if (fresh.ok()) {
      source_->Set(std::move(renewed));
      told_expired = false;
      Log()->info(
          "renewed the certificate of '{}': serial={} valid until {} (was serial={}, until {}); "
          "the next connection uses it",
          fresh->common_name, fresh->serial_hex, FormatUtc(fresh->not_after), cert->serial_hex,
          FormatUtc(cert->not_after));
      continue;
    }
    now = absl::Now();
    // Sooner as the expiry nears, never busy: a few tries before it expires.
    const absl::Duration retry = std::clamp((cert->not_after - now) / 4, absl::Seconds(1),
                                            options_.max_retry);
    if (now >= cert->not_after) {
      if (!told_expired) {
        Log()->error(
            "this agent's certificate for '{}' expired at {} and could not be renewed ({}); the "
            "coordinator refuses it from now on: enrol this host again with a new join token "
            "(`musafarm-coordinator join-token create` on the coordinator's host, then "
            "`musafarm-agent enroll --coordinator {} --token TOKEN --ca {} --work-dir ...`)",
            cert->common_name, FormatUtc(cert->not_after), std::string(fresh.status().message()),
            options_.coordinator(), options_.paths.ca);
        told_expired = true;
      }
    } else {
      Log()->warn("renewing the certificate of '{}' (valid until {}) failed: {}; retrying in {}",
                  cert->common_name, FormatUtc(cert->not_after), std::string(fresh.status().message()),
                  absl::FormatDuration(retry));
    }
    stop_.WaitForNotificationWithTimeout(retry);
  }
}

}  // namespace musafarm::agent
