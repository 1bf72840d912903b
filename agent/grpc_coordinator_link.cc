#include "agent/grpc_coordinator_link.h"

#include <atomic>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/coordinator_stream.h"
#include "common/coordinator_targets.h"
#include "common/grpc_status.h"
#include "common/limits.h"
#include "content/content_client.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::agent {
namespace {

// A session is a CoordinatorStream; this only forwards to it.
class GrpcSession final : public CoordinatorSession {
 public:
  explicit GrpcSession(std::shared_ptr<CoordinatorStream> stream) : stream_(std::move(stream)) {}
  void Send(v1::AgentMessage msg) override { stream_->Send(std::move(msg)); }
  void CloseSend() override { stream_->CloseSend(); }
  void Cancel() override { stream_->Cancel(); }

 private:
  const std::shared_ptr<CoordinatorStream> stream_;
};

class GrpcCoordinatorLink final : public CoordinatorLink {
 public:
  GrpcCoordinatorLink(std::vector<std::string> targets, TlsMaterialSource* tls);

  std::shared_ptr<CoordinatorSession> Open(OnMessage on_message, OnEnd on_end) override;
  std::string Target() const override { return targets_.Current(); }
  // CoordinatorStream calls on_message in OnReadDone, holding nothing, and
  // starts the next read after it; a write may start from within it.
  bool OnMessageMaySend() const override { return true; }
  content::BlobSource* blobs() override { return &blobs_; }

 private:
  // A channel and its stub, to one coordinator address, for one version of
  // the TLS material.
  struct Channel {
    std::string target;
    uint64_t tls_version = 0;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::AgentService::Stub> stub;
  };
  Channel NewChannel(const std::string& target, uint64_t tls_version,
                     const std::optional<ChannelTls>& tls) const;
  // The newest channel to `target` with the current TLS material, made when
  // there is none yet.
  Channel& ChannelTo(const std::string& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Which coordinator the next session opens to (issue 20): the one that
  // last answered, a standby's hint, or the next address after a failure.
  CoordinatorTargets targets_;
  TlsMaterialSource* const tls_;  // null: plaintext
  absl::Mutex mu_;
  uint64_t tls_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ChannelTls> tls_material_ ABSL_GUARDED_BY(mu_);
  // The newest last. Older ones are kept: a stream opened on one may still be
  // winding down, and its ClientContext must die before its channel. One per
  // coordinator address and certificate renewal, so few.
  std::vector<Channel> channels_ ABSL_GUARDED_BY(mu_);
  // ContentService reads on the channel to the current coordinator.
  content::ChannelBlobSource blobs_{[this] {
    const std::string target = targets_.Current();
    absl::MutexLock lock(&mu_);
    return ChannelTo(target).channel;
  }};
};

GrpcCoordinatorLink::GrpcCoordinatorLink(std::vector<std::string> targets,
                                         TlsMaterialSource* tls)
    : targets_(std::move(targets)), tls_(tls) {
  absl::MutexLock lock(&mu_);
  if (tls_ != nullptr) tls_material_ = tls_->Get(&tls_version_);
  ChannelTo(targets_.Current());
}

GrpcCoordinatorLink::Channel GrpcCoordinatorLink::NewChannel(
    const std::string& target, uint64_t tls_version, const std::optional<ChannelTls>& tls) const {
  grpc::ChannelArguments args;
  // A dead TCP path (a vanished coordinator host, a dropped NAT entry) is
  // found by the heartbeats themselves: with the keepalive time set, gRPC
  // sets TCP_USER_TIMEOUT to the keepalive timeout, so a heartbeat left
  // unacknowledged for 5 s breaks the connection (within the heartbeat
  // interval + 5 s). The pings are for when nothing is written (before
  // registration); each cost the coordinator a wake-up, 1,000 a second from
  // 10,000 agents at the 10 s they used to have (issue 19). The coordinator
  // must accept pings this often (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
  // KEEPALIVE_PERMIT_WITHOUT_CALLS) or it answers with GOAWAY.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // By default a client stops pinging after 2 pings without data; the
  // coordinator writes nothing to an idle agent, so keep pinging.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // The agent's own backoff paces reconnects; keep gRPC's short so it does
  // not add to it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  // An assignment carries a stage spec and its secrets: far below this.
  args.SetMaxReceiveMessageSize(limits::kMaxReplyBytes);
  Channel c;
  c.target = target;
  c.tls_version = tls_version;
  // One channel per address: TLS checks each coordinator's certificate
  // against the host of the address it was reached at (gRPC's default
  // target name), so one farm CA serves every coordinator.
  c.channel = grpc::CreateCustomChannel(target, MakeChannelCredentials(tls), args);
  c.stub = v1::AgentService::NewStub(c.channel);
  return c;
}

GrpcCoordinatorLink::Channel& GrpcCoordinatorLink::ChannelTo(const std::string& target) {
  for (auto it = channels_.rbegin(); it != channels_.rend(); ++it) {
    if (it->target == target && it->tls_version == tls_version_) return *it;
  }
  channels_.push_back(NewChannel(target, tls_version_, tls_material_));
  return channels_.back();
}

std::shared_ptr<CoordinatorSession> GrpcCoordinatorLink::Open(OnMessage on_message, OnEnd on_end) {
  const std::string target = targets_.Current();
  v1::AgentService::Stub* stub = nullptr;
  {
    absl::MutexLock lock(&mu_);
    // A renewed certificate: the connection this opens presents it. The
    // current stream, if any, keeps the channel it was opened on.
    if (tls_ != nullptr) {
      uint64_t version = tls_version_;
      std::optional<ChannelTls> material = tls_->Get(&version);
      if (version != tls_version_) {
        tls_version_ = version;
        tls_material_ = std::move(material);
      }
    }
    stub = ChannelTo(target).stub.get();
  }
  // The first message proves `target` serves: it is tried first from then on.
  auto answered = std::make_shared<std::atomic<bool>>(false);
  return std::make_shared<GrpcSession>(CoordinatorStream::Open(
      stub,
      [this, target, answered, on_message = std::move(on_message)](v1::CoordinatorMessage msg) {
        if (!answered->exchange(true)) targets_.MarkGood(target);
        on_message(std::move(msg));
      },
      [this, target, on_end = std::move(on_end)](grpc::Status status, CallEnd end) {
        // A standby's refusal, an unreachable address or a lost stream: the
        // next session goes to the standby's hint or the next address. The
        // agent re-registers there as after a coordinator restart.
        if (!status.ok() && end.reach != CallReach::kAnswered) targets_.Failed(target, end);
        on_end(FromGrpc(status));
      }));
}

}  // namespace

std::unique_ptr<CoordinatorLink> NewGrpcCoordinatorLink(std::vector<std::string> targets,
                                                        TlsMaterialSource* tls) {
  return std::make_unique<GrpcCoordinatorLink>(std::move(targets), tls);
}

}  // namespace musafarm::agent
