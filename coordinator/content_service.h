#pragma once

#include <string>

#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/blob_store.h"
#include "musafarm/v1/content_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for the content store (issue 17). Every call touches files or
// the SQLite index, so each reaction only posts its work to `io`, a loop of
// the content store's own, and re-arms from there: no gRPC thread and not the
// core loop ever waits on a disk.
//
// Who may call: users by their API token (submitter to write, viewer to read;
// in --insecure mode the OS user, as the user API does), and agents, which
// read, by the client certificate their TLS handshake presented, verified
// against `agent_ca_pem` (null: --insecure, where reads need no certificate).
class ContentServiceImpl final : public v1::ContentService::CallbackService {
 public:
  // None owned; all outlive the service.
  ContentServiceImpl(EventLoop* io, BlobStore* blobs, const AccessControl* access,
                     const std::string* agent_ca_pem)
      : io_(io), blobs_(blobs), access_(access), agent_ca_pem_(agent_ca_pem) {}

  grpc::ServerUnaryReactor* GetLimits(grpc::CallbackServerContext* ctx,
                                      const v1::GetContentLimitsRequest* req,
                                      v1::ContentLimits* resp) override;
  grpc::ServerUnaryReactor* FindMissingBlobs(grpc::CallbackServerContext* ctx,
                                             const v1::FindMissingBlobsRequest* req,
                                             v1::FindMissingBlobsResponse* resp) override;
  grpc::ServerReadReactor<v1::WriteRequest>* Write(grpc::CallbackServerContext* ctx,
                                                   v1::WriteResponse* resp) override;
  grpc::ServerUnaryReactor* QueryWriteStatus(grpc::CallbackServerContext* ctx,
                                             const v1::QueryWriteStatusRequest* req,
                                             v1::QueryWriteStatusResponse* resp) override;
  grpc::ServerWriteReactor<v1::ReadBlobResponse>* Read(grpc::CallbackServerContext* ctx,
                                                       const v1::ReadBlobRequest* req) override;

 private:
  // OK when the caller may read: a verified agent, or a user with kRead.
  absl::Status AdmitReader(grpc::CallbackServerContext* ctx) const;
  absl::Status AdmitWriter(grpc::CallbackServerContext* ctx) const;

  EventLoop* const io_;
  BlobStore* const blobs_;
  const AccessControl* const access_;
  const std::string* const agent_ca_pem_;
};

// Data in one WriteRequest / ReadBlobResponse.
inline constexpr int64_t kMaxContentChunkBytes = 1 << 20;
// Digests in one FindMissingBlobsRequest.
inline constexpr int kMaxFindMissingDigests = 20000;

}  // namespace musafarm::coordinator
