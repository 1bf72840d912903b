#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

// The transport reports core errors to clients through this mapping; a code
// that changed on the way would change what the CLI prints and its exit code.
TEST(GrpcStatusTest, CodesAndMessagesSurviveBothWays) {
  const absl::Status cases[] = {
      absl::OkStatus(),
      absl::NotFoundError("no job 7"),
      absl::InvalidArgumentError("bad spec"),
      absl::FailedPreconditionError("gap"),
      absl::UnavailableError("shutting down"),
      absl::CancelledError("watch cancelled"),
      absl::DeadlineExceededError("late"),
      absl::PermissionDeniedError("no"),
      absl::InternalError("boom"),
  };
  for (const absl::Status& s : cases) {
    const grpc::Status g = ToGrpc(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(s.code())) << s;
    EXPECT_EQ(g.error_message(), std::string(s.message())) << s;
    EXPECT_EQ(FromGrpc(g), s);
  }
  EXPECT_EQ(ToGrpc(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace musafarm
