#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/event_loop.h"
#include "coordinator/server.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_seams.h"

namespace musafarm::testing {

// The coordinator's real gRPC server on 127.0.0.1:0 and a running loop,
// delivering to fake seams instead of a Core; and a channel to it. Without
// `access` the server's default applies (plaintext: the OS user is admin).
class LoopbackTransport {
 public:
  explicit LoopbackTransport(const coordinator::AccessControl* access = nullptr,
                             coordinator::UserAdmin* admin = nullptr)
      : server_(&loop_, &sink, &api, std::nullopt, &enrollment, access, admin) {
    // As the coordinator's loop has them (its Core's BeginGroup / EndGroup).
    loop_.SetGroupHooks([this] { in_group = true; }, [this] { in_group = false; });
    loop_.Start();
    // ListCoordinators answers `coordinators` (read on the loop).
    server_.ServeCoordinators(
        &loop_, [this]() -> absl::StatusOr<v1::ListCoordinatorsResponse> { return coordinators; });
    absl::StatusOr<int> port = server_.Start("127.0.0.1:0");
    EXPECT_TRUE(port.ok()) << port.status();
    channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port.value_or(0)),
                                  grpc::InsecureChannelCredentials());
  }
  ~LoopbackTransport() {
    server_.Shutdown(absl::Seconds(5));
    loop_.Stop();
  }

  // Runs `fn` on the loop, which does nothing else meanwhile.
  void PostToLoop(absl::AnyInvocable<void() &&> fn) { loop_.Post(std::move(fn)); }
  const coordinator::Server& server() const { return server_; }

  std::thread::id LoopThread() {
    std::thread::id id;
    loop_.RunSync([&id] { id = std::this_thread::get_id(); });
    return id;
  }

  FakeAgentEventSink sink;
  FakeUserApi api;
  FakeEnrollmentApi enrollment;
  v1::ListCoordinatorsResponse coordinators;  // set before the first call
  std::shared_ptr<grpc::Channel> channel;
  // Whether the loop is running a group of closures (EventLoop::PostGrouped).
  std::atomic<bool> in_group{false};

 private:
  EventLoop loop_;
  coordinator::Server server_;
};

}  // namespace musafarm::testing
