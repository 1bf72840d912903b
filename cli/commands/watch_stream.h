#pragma once

#include <string>

#include "absl/functional/function_ref.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/support/status.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::cli {

// Runs UserService.WatchJob until the server ends the stream, resuming when it
// breaks with a transient code (UNAVAILABLE, CANCELLED by a server going down,
// ...) after at least one event: reconnects with jittered
// backoff, asking `make_request()` afresh each time (so it carries the current
// log_offsets), and gives up with UNAVAILABLE once reconnecting has failed for
// opts.give_up_after. Any other error, or a first connection that fails,
// returns at once. `notice` gets one-line human messages ("reconnecting...").
grpc::Status FollowWatch(const CommandEnv& env, const WatchOptions& opts,
                         absl::FunctionRef<v1::WatchJobRequest()> make_request,
                         absl::FunctionRef<void(const v1::WatchEvent&)> on_event,
                         absl::FunctionRef<void(const std::string&)> notice);

}  // namespace musafarm::cli
