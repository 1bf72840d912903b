#include "cli/client.h"

#include <sstream>

#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

TEST(ExitCodeForStatusTest, MapsCodesToExitCodes) {
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INVALID_ARGUMENT), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::NOT_FOUND), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::FAILED_PRECONDITION), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::UNAVAILABLE), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::DEADLINE_EXCEEDED), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INTERNAL), 1);
  // Issue 11: a refused identity or role is for the user to fix, like bad input.
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::PERMISSION_DENIED), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::UNAUTHENTICATED), 2);
}

TEST(ReportRpcErrorTest, SaysWhatIsWrong) {
  std::ostringstream out, err;
  CommandEnv env;
  env.coordinator = "127.0.0.1:1";
  env.out = &out;
  env.err = &err;
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused")), 3);
  EXPECT_EQ(err.str(), "musafarm: cannot reach coordinator at 127.0.0.1:1: refused\n");
  err.str("");
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::NOT_FOUND, "no job 9")), 2);
  EXPECT_EQ(err.str(), "musafarm: no job 9\n");
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace musafarm::cli
