#include "coordinator/content_service.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "content/digest.h"
#include "coordinator/grpc_call.h"
#include "coordinator/tls_material.h"

namespace musafarm::coordinator {
namespace {

// One Write call. Reads one message at a time: the next read starts only once
// the I/O loop has stored the last one, so at most one message is held.
class WriteCall final : public grpc::ServerReadReactor<v1::WriteRequest> {
 public:
  WriteCall(EventLoop* io, BlobStore* blobs, v1::WriteResponse* resp)
      : io_(io), blobs_(blobs), resp_(resp) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away): the blob must be whole by now
      io_->Post([this] { End(upload_ == nullptr
                                  ? absl::InvalidArgumentError("a Write carried no message")
                                  : upload_->Finish()); });
      return;
    }
    io_->Post([this, msg = std::move(in_)]() mutable { Take(std::move(msg)); });
  }

  void OnDone() override {
    // Closes the file (a partial upload stays for a resume) on the loop that wrote it.
    io_->Post([this] { delete this; });
  }

 private:
  // On io_.
  void Take(v1::WriteRequest msg) {
    if (static_cast<int64_t>(msg.data().size()) > kMaxContentChunkBytes) {
      return End(absl::InvalidArgumentError(absl::StrCat(
          "a WriteRequest carries ", msg.data().size(), " bytes; at most ", kMaxContentChunkBytes)));
    }
    if (upload_ == nullptr) {
      if (absl::Status s = content::CheckDigest(msg.digest(), "Write"); !s.ok()) return End(s);
      absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(msg.digest(), msg.offset());
      if (up.status().code() == absl::StatusCode::kAlreadyExists) {
        resp_->set_committed_size(msg.digest().size_bytes());  // nothing more to send
        return End(absl::OkStatus());
      }
      if (!up.ok()) return End(up.status());
      upload_ = *std::move(up);
      digest_ = msg.digest();
    }
    if (absl::Status s = upload_->Append(msg.data()); !s.ok()) return End(s);
    if (upload_->committed_size() == digest_.size_bytes()) return End(upload_->Finish());
    StartRead(&in_);
  }

  void End(absl::Status status) {
    if (ended_) return;
    ended_ = true;
    if (upload_ != nullptr) resp_->set_committed_size(upload_->committed_size());
    // Released before the client hears the outcome, so that a resume it starts
    // at once does not find the blob still being uploaded.
    upload_.reset();
    Finish(ToGrpc(status));
  }

  EventLoop* const io_;
  BlobStore* const blobs_;
  v1::WriteResponse* const resp_;
  v1::WriteRequest in_;
  v1::Digest digest_;
  std::unique_ptr<BlobUpload> upload_;  // on io_
  bool ended_ = false;                  // on io_
};

// One Read call: reads a chunk on the I/O loop, writes it, repeats.
class ReadCall final : public grpc::ServerWriteReactor<v1::ReadBlobResponse> {
 public:
  ReadCall(EventLoop* io, BlobStore* blobs, v1::ReadBlobRequest req)
      : io_(io), blobs_(blobs) {
    io_->Post([this, req = std::move(req)] { Begin(req); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      io_->Post([this] { Finish(grpc::Status(grpc::StatusCode::CANCELLED, "reader gone")); });
      return;
    }
    io_->Post([this] { Next(); });
  }

  void OnDone() override {
    io_->Post([this] { delete this; });
  }

 private:
  void Begin(const v1::ReadBlobRequest& req) {
    if (absl::Status s = content::CheckDigest(req.digest(), "Read"); !s.ok()) {
      return Finish(ToGrpc(s));
    }
    absl::StatusOr<std::unique_ptr<BlobReader>> r = blobs_->StartRead(req.digest(), req.offset());
    if (!r.ok()) return Finish(ToGrpc(r.status()));
    reader_ = *std::move(r);
    Next();
  }

  void Next() {
    absl::StatusOr<std::string> data = reader_->Next(static_cast<size_t>(kMaxContentChunkBytes));
    if (!data.ok()) return Finish(ToGrpc(data.status()));
    if (data->empty()) return Finish(grpc::Status::OK);
    out_.set_data(*std::move(data));
    StartWrite(&out_);
  }

  EventLoop* const io_;
  BlobStore* const blobs_;
  std::unique_ptr<BlobReader> reader_;  // on io_
  v1::ReadBlobResponse out_;
};

}  // namespace

absl::Status ContentServiceImpl::AdmitReader(grpc::CallbackServerContext* ctx) const {
  if (agent_ca_pem_ != nullptr && ctx->auth_context() != nullptr &&
      !ctx->auth_context()->FindPropertyValues("x509_pem_cert").empty()) {
    // A client certificate: an agent, verified as its stream is.
    return VerifyAgentPeer(*ctx->auth_context(), *agent_ca_pem_, absl::Now()).status();
  }
  return AdmitCall(ctx, *access_, nullptr, Action::kRead, "", "").status();
}

absl::Status ContentServiceImpl::AdmitWriter(grpc::CallbackServerContext* ctx) const {
  return AdmitCall(ctx, *access_, nullptr, Action::kSubmit, "", "").status();
}

grpc::ServerUnaryReactor* ContentServiceImpl::GetLimits(grpc::CallbackServerContext* ctx,
                                                        const v1::GetContentLimitsRequest*,
                                                        v1::ContentLimits* resp) {
  if (absl::Status s = AdmitReader(ctx); !s.ok()) return FinishNow(ctx, s);
  resp->set_max_input_bytes(blobs_->max_bytes());
  resp->set_max_chunk_bytes(kMaxContentChunkBytes);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* ContentServiceImpl::FindMissingBlobs(
    grpc::CallbackServerContext* ctx, const v1::FindMissingBlobsRequest* req,
    v1::FindMissingBlobsResponse* resp) {
  if (absl::Status s = AdmitReader(ctx); !s.ok()) return FinishNow(ctx, s);
  if (req->digests_size() > kMaxFindMissingDigests) {
    return FinishNow(ctx, absl::InvalidArgumentError(absl::StrCat(
                              "FindMissingBlobs names ", req->digests_size(),
                              " digests; at most ", kMaxFindMissingDigests, " per call")));
  }
  std::vector<v1::Digest> digests;
  for (int i = 0; i < req->digests_size(); ++i) {
    if (absl::Status s = content::CheckDigest(req->digests(i), absl::StrCat("digest ", i));
        !s.ok()) {
      return FinishNow(ctx, s);
    }
    digests.push_back(req->digests(i));
  }
  return OnLoop(ctx, io_, [this, digests = std::move(digests), resp]() -> absl::Status {
    absl::StatusOr<std::vector<v1::Digest>> missing = blobs_->FindMissing(digests);
    if (!missing.ok()) return missing.status();
    for (v1::Digest& d : *missing) *resp->add_missing() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ContentServiceImpl::QueryWriteStatus(
    grpc::CallbackServerContext* ctx, const v1::QueryWriteStatusRequest* req,
    v1::QueryWriteStatusResponse* resp) {
  if (absl::Status s = AdmitWriter(ctx); !s.ok()) return FinishNow(ctx, s);
  if (absl::Status s = content::CheckDigest(req->digest(), "QueryWriteStatus"); !s.ok()) {
    return FinishNow(ctx, s);
  }
  return OnLoop(ctx, io_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<BlobWriteState> state = blobs_->QueryWrite(req->digest());
    if (!state.ok()) return state.status();
    resp->set_committed_size(state->committed_size);
    resp->set_complete(state->complete);
    return absl::OkStatus();
  });
}

grpc::ServerReadReactor<v1::WriteRequest>* ContentServiceImpl::Write(
    grpc::CallbackServerContext* ctx, v1::WriteResponse* resp) {
  if (absl::Status s = AdmitWriter(ctx); !s.ok()) {
    // A reactor that only refuses: finished before any read.
    class Refused final : public grpc::ServerReadReactor<v1::WriteRequest> {
     public:
      explicit Refused(const absl::Status& why) { Finish(ToGrpc(why)); }
      void OnDone() override { delete this; }
    };
    return new Refused(s);
  }
  return new WriteCall(io_, blobs_, resp);
}

grpc::ServerWriteReactor<v1::ReadBlobResponse>* ContentServiceImpl::Read(
    grpc::CallbackServerContext* ctx, const v1::ReadBlobRequest* req) {
  if (absl::Status s = AdmitReader(ctx); !s.ok()) {
    class Refused final : public grpc::ServerWriteReactor<v1::ReadBlobResponse> {
     public:
      explicit Refused(const absl::Status& why) { Finish(ToGrpc(why)); }
      void OnDone() override { delete this; }
    };
    return new Refused(s);
  }
  return new ReadCall(io_, blobs_, *req);
}

}  // namespace musafarm::coordinator
