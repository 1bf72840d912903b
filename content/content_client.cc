#include "content/content_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "content/digest.h"

namespace musafarm::content {
namespace {

constexpr int kFindMissingBatch = 10000;

absl::Status Named(const grpc::Status& s, const v1::Digest& d, absl::string_view what) {
  absl::Status st = FromGrpc(s);
  if (absl::StrContains(st.message(), d.sha256().substr(0, 12))) return st;
  return absl::Status(st.code(), absl::StrCat(what, " ", ShortDigest(d), ": ", st.message()));
}

// Bytes [offset, offset + n) of the blob: from its file, or its inline bytes.
absl::StatusOr<std::string> ReadPiece(const PackedBlob& blob, int fd, int64_t offset, int64_t n) {
  if (blob.path.empty()) return blob.bytes.substr(static_cast<size_t>(offset), static_cast<size_t>(n));
  std::string buf(static_cast<size_t>(n), '\0');
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t r = ::pread(fd, buf.data() + got, buf.size() - got,
                              static_cast<off_t>(offset) + static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return absl::InternalError(absl::StrCat(blob.path, ": ", std::strerror(errno)));
    if (r == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(blob.path, ": shorter than when it was packed (changed meanwhile?)"));
    }
    got += static_cast<size_t>(r);
  }
  return buf;
}

absl::Status UploadBlobOnce(v1::ContentService::StubInterface& stub, const PackedBlob& blob,
                            int64_t offset, const UploadOptions& options, UploadProgress* progress) {
  int fd = -1;
  if (!blob.path.empty()) {
    fd = ::open(blob.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(absl::StrCat(blob.path, ": ", std::strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  std::unique_ptr<grpc::ClientContext> ctx =
      options.stream_context ? options.stream_context() : options.context();
  v1::WriteResponse resp;
  std::unique_ptr<grpc::ClientWriterInterface<v1::WriteRequest>> writer = stub.Write(ctx.get(), &resp);
  const int64_t size = blob.digest.size_bytes();
  bool first = true;
  int64_t at = offset;
  // At least one message, even for an empty blob: it names the digest.
  while (first || at < size) {
    v1::WriteRequest req;
    if (first) {
      *req.mutable_digest() = blob.digest;
      req.set_offset(offset);
    }
    const int64_t n = std::min(options.chunk_bytes, size - at);
    MF_ASSIGN_OR_RETURN(std::string data, ReadPiece(blob, fd, at, n));
    req.set_data(std::move(data));
    first = false;
    if (!writer->Write(req)) break;  // the server ended the call: its status says why
    at += n;
    // gRPC has handed the chunk on; the server's final answer confirms it.
    progress->bytes_sent += n;
    if (options.progress) options.progress(*progress);
  }
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return Named(s, blob.digest, "upload of blob");
  if (resp.committed_size() != size) {
    return absl::InternalError(absl::StrCat("upload of blob ", ShortDigest(blob.digest),
                                            ": the coordinator holds ", resp.committed_size(),
                                            " of ", size, " bytes"));
  }
  return absl::OkStatus();
}

// The coordinator's committed size of `blob` (its whole size once complete).
absl::StatusOr<int64_t> Committed(v1::ContentService::StubInterface& stub, const v1::Digest& digest,
                                  const UploadOptions& options) {
  v1::QueryWriteStatusRequest req;
  *req.mutable_digest() = digest;
  v1::QueryWriteStatusResponse resp;
  std::unique_ptr<grpc::ClientContext> ctx = options.context();
  if (grpc::Status s = stub.QueryWriteStatus(ctx.get(), req, &resp); !s.ok()) {
    return Named(s, digest, "status of blob");
  }
  return resp.complete() ? digest.size_bytes() : resp.committed_size();
}

// An upload from `offset`, again from where the coordinator stands while it
// is still finishing an earlier call for the same blob (ABORTED: the earlier
// call holds it; OUT_OF_RANGE: it wrote more meanwhile), for up to ~10 s.
absl::Status UploadBlob(v1::ContentService::StubInterface& stub, const PackedBlob& blob,
                        int64_t offset, const UploadOptions& options, UploadProgress* progress) {
  for (int attempt = 0;; ++attempt) {
    absl::Status s = UploadBlobOnce(stub, blob, offset, options, progress);
    const bool busy = s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kOutOfRange;
    if (!busy || attempt == 50) return s;
    absl::SleepFor(absl::Milliseconds(200));
    MF_ASSIGN_OR_RETURN(offset, Committed(stub, blob.digest, options));
    if (offset == blob.digest.size_bytes()) return absl::OkStatus();
  }
}

}  // namespace

namespace {

// FindMissingBlobs over `digests`, in batches; returns the sha256 of those missing.
absl::StatusOr<std::set<std::string>> Missing(v1::ContentService::StubInterface& stub,
                                              const std::vector<v1::Digest>& digests,
                                              const UploadOptions& options) {
  std::set<std::string> lacking;
  for (size_t i = 0; i < digests.size(); i += kFindMissingBatch) {
    v1::FindMissingBlobsRequest req;
    for (size_t j = i; j < digests.size() && j < i + kFindMissingBatch; ++j) {
      *req.add_digests() = digests[j];
    }
    v1::FindMissingBlobsResponse resp;
    std::unique_ptr<grpc::ClientContext> ctx = options.context();
    if (grpc::Status s = stub.FindMissingBlobs(ctx.get(), req, &resp); !s.ok()) return FromGrpc(s);
    for (const v1::Digest& d : resp.missing()) lacking.insert(d.sha256());
  }
  return lacking;
}

}  // namespace

absl::StatusOr<UploadProgress> UploadTree(v1::ContentService::StubInterface& stub,
                                          const PackedTree& tree, const UploadOptions& options) {
  UploadProgress progress;
  progress.files = tree.files;
  // Top down: directories are uploaded after everything under them, so one
  // the coordinator holds stands for its whole subtree, and only the
  // directories it lacks are looked into. A second submit after a small
  // change asks about the path to the change, not about every file.
  std::set<std::string> missing_dirs;
  std::set<std::string> candidate_files;
  std::vector<v1::Digest> level = {tree.root};
  while (!level.empty()) {
    MF_ASSIGN_OR_RETURN(std::set<std::string> lacking, Missing(stub, level, options));
    std::vector<v1::Digest> next;
    for (const v1::Digest& d : level) {
      if (lacking.count(d.sha256()) == 0 || !missing_dirs.insert(d.sha256()).second) continue;
      v1::Directory dir;
      if (!dir.ParseFromString(tree.blobs.at(d.sha256()).bytes)) {
        return absl::InternalError(absl::StrCat("directory ", ShortDigest(d), " does not parse"));
      }
      for (const v1::FileNode& f : dir.files()) candidate_files.insert(f.digest().sha256());
      for (const v1::DirectoryNode& c : dir.dirs()) next.push_back(c.digest());
    }
    level = std::move(next);
  }
  if (options.every_blob) {
    std::vector<v1::Digest> dirs;
    for (const std::string& sha : tree.directories) dirs.push_back(tree.blobs.at(sha).digest);
    MF_ASSIGN_OR_RETURN(missing_dirs, Missing(stub, dirs, options));
    candidate_files.clear();
    for (const auto& [sha, blob] : tree.blobs) {
      if (!blob.path.empty()) candidate_files.insert(sha);
    }
  }
  std::vector<v1::Digest> files;
  for (const std::string& sha : candidate_files) files.push_back(tree.blobs.at(sha).digest);
  MF_ASSIGN_OR_RETURN(std::set<std::string> missing_files, Missing(stub, files, options));
  // Small files first, then larger, then directories children first: an
  // upload cut short leaves whole files behind it and one partial blob.
  std::vector<const PackedBlob*> missing;
  for (const std::string& sha : missing_files) missing.push_back(&tree.blobs.at(sha));
  std::stable_sort(missing.begin(), missing.end(), [](const PackedBlob* a, const PackedBlob* b) {
    return a->digest.size_bytes() < b->digest.size_bytes();
  });
  for (const std::string& sha : tree.directories) {
    if (missing_dirs.count(sha) != 0) missing.push_back(&tree.blobs.at(sha));
  }
  int64_t total = 0;
  for (const auto& [sha, blob] : tree.blobs) total += blob.digest.size_bytes();
  // Where each missing blob resumes: a partial upload the coordinator kept.
  std::vector<int64_t> offsets;
  int64_t to_send = 0;
  for (const PackedBlob* blob : missing) {
    MF_ASSIGN_OR_RETURN(const int64_t offset, Committed(stub, blob->digest, options));
    offsets.push_back(offset);
    to_send += blob->digest.size_bytes() - offset;
  }
  progress.blobs_missing = static_cast<int64_t>(missing.size());
  progress.bytes_to_send = to_send;
  progress.bytes_skipped = total - to_send;
  if (options.progress) options.progress(progress);
  for (size_t i = 0; i < missing.size(); ++i) {
    if (offsets[i] == missing[i]->digest.size_bytes() && offsets[i] > 0) continue;  // complete
    MF_RETURN_IF_ERROR(UploadBlob(stub, *missing[i], offsets[i], options, &progress));
  }
  return progress;
}

namespace {

// Streams the blob to `sink`, hashing it; DATA_LOSS when it does not match.
absl::Status ReadBlob(v1::ContentService::StubInterface& stub, const v1::Digest& digest,
                      const ContextFactory& context,
                      const std::function<absl::Status(absl::string_view)>& sink) {
  std::unique_ptr<grpc::ClientContext> ctx = context();
  v1::ReadBlobRequest req;
  *req.mutable_digest() = digest;
  std::unique_ptr<grpc::ClientReaderInterface<v1::ReadBlobResponse>> reader = stub.Read(ctx.get(), req);
  Hasher hasher;
  int64_t size = 0;
  v1::ReadBlobResponse resp;
  absl::Status sunk;
  while (sunk.ok() && reader->Read(&resp)) {
    hasher.Update(resp.data());
    size += static_cast<int64_t>(resp.data().size());
    sunk = sink(resp.data());
  }
  if (!sunk.ok()) {
    ctx->TryCancel();
    (void)reader->Finish();  // cancelled by us; `sunk` says why
    return sunk;
  }
  if (grpc::Status s = reader->Finish(); !s.ok()) return Named(s, digest, "read of blob");
  const std::string actual = hasher.FinishHex();
  if (size != digest.size_bytes() || actual != digest.sha256()) {
    return absl::DataLossError(absl::StrCat("blob ", ShortDigest(digest), " arrived as ", size,
                                            " bytes hashing to sha256:", actual.substr(0, 12)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> FetchBlob(v1::ContentService::StubInterface& stub,
                                      const v1::Digest& digest, const ContextFactory& context) {
  std::string out;
  MF_RETURN_IF_ERROR(ReadBlob(stub, digest, context, [&](absl::string_view data) {
    if (static_cast<int64_t>(out.size() + data.size()) > digest.size_bytes()) {
      return absl::DataLossError(absl::StrCat("blob ", ShortDigest(digest), " is longer than its size"));
    }
    out.append(data.data(), data.size());
    return absl::OkStatus();
  }));
  return out;
}

absl::Status FetchBlobToFile(v1::ContentService::StubInterface& stub, const v1::Digest& digest,
                             const std::string& path, int mode, const ContextFactory& context) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path, mode));
  MF_RETURN_IF_ERROR(ReadBlob(stub, digest, context,
                              [&](absl::string_view data) { return file->Append(data); }));
  return file->Commit();
}

namespace {

// Reads stream as long as their blob takes; keepalive notices a dead peer.
std::unique_ptr<grpc::ClientContext> StreamContext() { return std::make_unique<grpc::ClientContext>(); }

}  // namespace

absl::StatusOr<std::string> ChannelBlobSource::Fetch(const v1::Digest& digest) {
  std::unique_ptr<v1::ContentService::Stub> stub = v1::ContentService::NewStub(channel_());
  return FetchBlob(*stub, digest, StreamContext);
}

absl::Status ChannelBlobSource::FetchToFile(const v1::Digest& digest, const std::string& path) {
  std::unique_ptr<v1::ContentService::Stub> stub = v1::ContentService::NewStub(channel_());
  return FetchBlobToFile(*stub, digest, path, 0600, StreamContext);
}

}  // namespace musafarm::content
