#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/event_loop.h"
#include "coordinator/core.h"

namespace grpc {
class Server;
}

namespace musafarm::coordinator {

class AgentServiceImpl;
class UserServiceImpl;

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";   // host:port; port 0 picks a free one
  std::string data_dir = "musafarm-data";  // musafarm.db and logs/
  std::string port_file;                   // if set, the bound port is written here
  CoreOptions core;
};

// The coordinator process: store, log store, core loop and the gRPC server,
// wired together. Start() binds and serves; Shutdown() closes streams cleanly.
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  absl::Status Start();
  int port() const { return port_; }
  void Shutdown();

 private:
  ServerOptions options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LogStore> logs_;
  EventLoop loop_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<UserServiceImpl> user_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace musafarm::coordinator
