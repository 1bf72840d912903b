// End-to-end tests of issue 17's content store through the real coordinator
// binary: a raw gRPC client and the CLI against what is on its disk.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "content/digest.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/content_service.grpc.pb.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::testing::HasSubstr;

// A corrupted blob is refused by its digest: an upload whose bytes do not
// hash to the digest it names, and a stored blob whose file changed on the
// coordinator's disk (read back as DATA_LOSS naming it, and dropped, so the
// next submit of the same directory sends it again). The coordinator keeps
// serving throughout.
TEST(ContentE2eTest, ACorruptedBlobIsRefusedByDigestAndSentAgain) {
  Farm farm;
  farm.StartCoordinator();
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  auto stub = v1::ContentService::NewStub(
      grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials()));

  const v1::Digest claimed = content::DigestOf("the real bytes");
  {
    grpc::ClientContext ctx;
    v1::WriteResponse resp;
    auto writer = stub->Write(&ctx, &resp);
    v1::WriteRequest req;
    *req.mutable_digest() = claimed;
    req.set_data("the fake bytes");
    writer->Write(req);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(content::ShortDigest(claimed)));
  }

  const std::string src = farm.dir() + "/src";
  std::filesystem::create_directories(src);
  std::ofstream(src + "/msg.txt") << "original bytes\n";
  const std::string pipeline = farm.WritePipeline(
      "ctx.yaml", "name: ctx\nstages:\n  - name: build\n    exec: [\"true\"]\n");
  CliResult first = farm.Cli({"submit", pipeline, "--context", "src=" + src, "--watch"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;

  const v1::Digest file = content::DigestOf("original bytes\n");
  const std::string path = absl::StrCat(farm.data_dir(), "/blobs/", file.sha256().substr(0, 2),
                                        "/", file.sha256());
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "ORIGINAL BYTES\n";
  {
    grpc::ClientContext ctx;
    v1::ReadBlobRequest req;
    *req.mutable_digest() = file;
    auto reader = stub->Read(&ctx, req);
    v1::ReadBlobResponse resp;
    std::string got;
    while (reader->Read(&resp)) got += resp.data();
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(content::ShortDigest(file)));
  }
  // The same directory again: the coordinator refuses the job for the blob
  // it no longer holds, and the CLI sends that blob again.
  CliResult again = farm.Cli({"submit", pipeline, "--context", "src=" + src, "--watch"});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.err, HasSubstr("uploading again"));
  std::ifstream back(path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(back), {}), "original bytes\n");
}

}  // namespace
}  // namespace musafarm::e2e
