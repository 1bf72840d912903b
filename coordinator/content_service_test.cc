// ContentServiceImpl on the coordinator's real gRPC server (127.0.0.1:0) over
// a LocalBlobStore, driven by the real client (content/content_client.h):
// uploads only what is missing, resumes, refuses by digest, reads verified,
// and checks tokens and roles.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "content/content_client.h"
#include "content/digest.h"
#include "content/packer.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/server.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_seams.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

class ContentServiceTest : public ::testing::Test {
 protected:
  ContentServiceTest()
      : store_(store_testing::OpenSqliteOrFail(dir_.File("farm.db"))),
        access_(store_testing::OpenSqliteOrFail(dir_.File("farm.db")), /*insecure=*/false),
        admin_(store_testing::OpenSqliteOrFail(dir_.File("farm.db"))),
        server_(&loop_, &sink_, &api_, std::nullopt, &enrollment_, &access_, &admin_) {
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> b =
        LocalBlobStore::Open({dir_.File("blobs"), dir_.File("farm.db"), int64_t{1} << 30});
    EXPECT_TRUE(b.ok()) << b.status();
    blobs_ = *std::move(b);
    loop_.Start();
    io_.Start();
    server_.ServeContent(&io_, blobs_.get());
    absl::StatusOr<int> port = server_.Start("127.0.0.1:0");
    EXPECT_TRUE(port.ok()) << port.status();
    stub_ = v1::ContentService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port.value_or(0)), grpc::InsecureChannelCredentials()));
    submitter_ = Token("sam", "submitter");
  }
  ~ContentServiceTest() override {
    server_.Shutdown(absl::Seconds(5));
    io_.Stop();
    loop_.Stop();
  }

  std::string Token(const std::string& user, const std::string& role) {
    absl::StatusOr<NewApiToken> t =
        admin_.CreateToken({"root", "admin", "host"}, user, role, absl::Hours(1), absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->text : "";
  }

  content::ContextFactory As(const std::string& token) {
    return [token] {
      auto ctx = std::make_unique<grpc::ClientContext>();
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
      return ctx;
    };
  }

  content::PackedTree Pack(const std::string& dir) {
    absl::StatusOr<content::PackedTree> t = content::PackDirectory(dir);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *std::move(t) : content::PackedTree{};
  }

  std::string MakeContext() {
    const std::string ctx = dir_.File("ctx");
    std::filesystem::create_directories(ctx + "/src");
    std::ofstream(ctx + "/Dockerfile") << "FROM busybox\nCOPY . /src\n";
    std::ofstream(ctx + "/src/big.bin", std::ios::binary) << std::string(2500000, 'b');
    std::ofstream(ctx + "/src/small.txt") << "small\n";
    return ctx;
  }

  store_testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  AccessControl access_;
  UserAdmin admin_;
  testing::FakeAgentEventSink sink_;
  testing::FakeUserApi api_;
  testing::FakeEnrollmentApi enrollment_;
  EventLoop loop_;
  EventLoop io_;
  std::unique_ptr<LocalBlobStore> blobs_;
  Server server_;
  std::unique_ptr<v1::ContentService::Stub> stub_;
  std::string submitter_;
};

TEST_F(ContentServiceTest, UploadsOnlyWhatIsMissingAndReadsItBack) {
  const content::PackedTree tree = Pack(MakeContext());
  content::UploadOptions opts;
  opts.context = As(submitter_);
  opts.chunk_bytes = 1 << 20;
  absl::StatusOr<content::UploadProgress> first = content::UploadTree(*stub_, tree, opts);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->blobs_missing, static_cast<int64_t>(tree.blobs.size()));
  EXPECT_EQ(first->bytes_skipped, 0);
  EXPECT_EQ(first->bytes_sent, first->bytes_to_send);
  ASSERT_TRUE(CheckTreeComplete(*blobs_, tree.root, "input 'ctx'").ok());

  // Again: nothing to send.
  absl::StatusOr<content::UploadProgress> again = content::UploadTree(*stub_, tree, opts);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->blobs_missing, 0);
  EXPECT_EQ(again->bytes_sent, 0);
  EXPECT_EQ(again->bytes_skipped, first->bytes_to_send);

  // One small file changed: only it and the directories above it go.
  std::ofstream(dir_.File("ctx/src/small.txt")) << "changed\n";
  absl::StatusOr<content::UploadProgress> changed = content::UploadTree(*stub_, Pack(dir_.File("ctx")), opts);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->blobs_missing, 3);  // the file, src/, the root
  EXPECT_LT(changed->bytes_sent, 1000);

  const v1::Digest big = content::DigestOf(std::string(2500000, 'b'));
  absl::StatusOr<std::string> read = content::FetchBlob(*stub_, big, As(Token("vera", "viewer")));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::string(2500000, 'b'));
  const std::string file = dir_.File("fetched");
  ASSERT_TRUE(content::FetchBlobToFile(*stub_, big, file, 0444, As(submitter_)).ok());
  EXPECT_EQ(std::filesystem::file_size(file), 2500000u);
}

TEST_F(ContentServiceTest, ABlobLostUnderAKeptDirectoryIsFoundWhenAskingAboutEveryBlob) {
  const content::PackedTree tree = Pack(MakeContext());
  content::UploadOptions opts;
  opts.context = As(submitter_);
  ASSERT_TRUE(content::UploadTree(*stub_, tree, opts).ok());
  // The small file's bytes go bad on disk; reading it finds that and drops it.
  const v1::Digest small = content::DigestOf("small\n");
  std::ofstream(blobs_->BlobPath(small.sha256()), std::ios::trunc) << "SMALL\n";
  EXPECT_EQ(content::FetchBlob(*stub_, small, As(submitter_)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(CheckTreeComplete(*blobs_, tree.root, "input 'ctx'").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Top down, the kept root stands for its tree: nothing is sent.
  absl::StatusOr<content::UploadProgress> top_down = content::UploadTree(*stub_, tree, opts);
  ASSERT_TRUE(top_down.ok());
  EXPECT_EQ(top_down->blobs_missing, 0);
  opts.every_blob = true;
  absl::StatusOr<content::UploadProgress> every = content::UploadTree(*stub_, tree, opts);
  ASSERT_TRUE(every.ok()) << every.status();
  EXPECT_EQ(every->blobs_missing, 1);
  EXPECT_TRUE(CheckTreeComplete(*blobs_, tree.root, "input 'ctx'").ok());
}

TEST_F(ContentServiceTest, CorruptUploadIsRefusedByDigest) {
  const v1::Digest claimed = content::DigestOf("the real bytes");
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + submitter_);
  v1::WriteResponse resp;
  auto writer = stub_->Write(&ctx, &resp);
  v1::WriteRequest req;
  *req.mutable_digest() = claimed;
  req.set_data("the fake bytes");
  writer->Write(req);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(content::ShortDigest(claimed) + " refused"));
  v1::FindMissingBlobsRequest find;
  *find.add_digests() = claimed;
  v1::FindMissingBlobsResponse missing;
  ASSERT_TRUE(stub_->FindMissingBlobs(As(submitter_)().get(), find, &missing).ok());
  EXPECT_EQ(missing.missing_size(), 1);
}

TEST_F(ContentServiceTest, InterruptedUploadResumesWhereTheServerStopped) {
  const std::string ctx_dir = MakeContext();
  const content::PackedTree tree = Pack(ctx_dir);
  const v1::Digest big = content::DigestOf(std::string(2500000, 'b'));
  {
    // A client that dies after two chunks: it never half-closes properly.
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + submitter_);
    v1::WriteResponse resp;
    auto writer = stub_->Write(&ctx, &resp);
    v1::WriteRequest req;
    *req.mutable_digest() = big;
    req.set_data(std::string(1 << 20, 'b'));
    ASSERT_TRUE(writer->Write(req));
    req.clear_digest();
    ASSERT_TRUE(writer->Write(req));
    writer->WritesDone();
    EXPECT_THAT(writer->Finish().error_message(), HasSubstr("ended after 2097152"));
  }
  v1::QueryWriteStatusRequest q;
  *q.mutable_digest() = big;
  v1::QueryWriteStatusResponse state;
  ASSERT_TRUE(stub_->QueryWriteStatus(As(submitter_)().get(), q, &state).ok());
  EXPECT_EQ(state.committed_size(), 2097152);
  EXPECT_FALSE(state.complete());

  content::UploadOptions opts;
  opts.context = As(submitter_);
  absl::StatusOr<content::UploadProgress> resumed = content::UploadTree(*stub_, tree, opts);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  // The rest of the big file, the small one, the Dockerfile and two directories.
  EXPECT_EQ(resumed->bytes_skipped, 2097152);
  EXPECT_LT(resumed->bytes_sent, 2500000 - 2097152 + 2000);
  EXPECT_TRUE(CheckTreeComplete(*blobs_, tree.root, "input 'ctx'").ok());
}

TEST_F(ContentServiceTest, TokensAndRolesAreChecked) {
  const content::PackedTree tree = Pack(MakeContext());
  content::UploadOptions opts;
  opts.context = As("");
  absl::Status s = content::UploadTree(*stub_, tree, opts).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  opts.context = As(Token("vera", "viewer"));
  s = content::UploadTree(*stub_, tree, opts).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("vera"));
  v1::ReadBlobRequest read;
  *read.mutable_digest() = tree.root;
  grpc::ClientContext ctx;
  auto reader = stub_->Read(&ctx, read);
  v1::ReadBlobResponse resp;
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A missing blob is NOT_FOUND, by digest.
  absl::Status nf = content::FetchBlob(*stub_, tree.root, As(submitter_)).status();
  EXPECT_EQ(nf.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(nf.message(), HasSubstr(content::ShortDigest(tree.root)));
}

}  // namespace
}  // namespace musafarm::coordinator
