#include "coordinator/registry_image_deleter.h"

#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace musafarm::coordinator {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("retention");
  return log;
}

// Every manifest kind a push may have stored: the registry answers HEAD with
// the digest of the one it holds only when its type is accepted.
constexpr char kManifestTypes[] =
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

struct ImageRef {
  std::string host;  // host:port
  std::string name;  // repository, e.g. musafarm/torch_musa-base
  std::string tag;
};

absl::StatusOr<ImageRef> ParseRef(const std::string& image) {
  const size_t slash = image.find('/');
  if (slash == std::string::npos || slash == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", image, "' names no registry host"));
  }
  ImageRef ref;
  ref.host = image.substr(0, slash);
  std::string rest = image.substr(slash + 1);
  if (rest.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", image, "' is a digest, not a tag"));
  }
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    ref.name = rest.substr(0, colon);
    ref.tag = rest.substr(colon + 1);
  } else {
    ref.name = rest;
    ref.tag = "latest";
  }
  if (ref.name.empty() || ref.tag.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", image, "' is not name:tag"));
  }
  return ref;
}

httplib::Headers AcceptManifests() { return {{"Accept", kManifestTypes}}; }

// The manifest digest `tag` points at; "" when there is no such tag.
absl::StatusOr<std::string> Digest(httplib::Client& http, const ImageRef& ref,
                                   const std::string& tag) {
  const std::string path = absl::StrCat("/v2/", ref.name, "/manifests/", tag);
  httplib::Result r = http.Head(path.c_str(), AcceptManifests());
  if (!r) {
    return absl::UnavailableError(
        absl::StrCat("registry ", ref.host, ": HEAD ", path, ": ", httplib::to_string(r.error())));
  }
  if (r->status == 404) return std::string();
  const std::string digest = r->get_header_value("Docker-Content-Digest");
  if (r->status != 200 || digest.empty()) {
    return absl::UnavailableError(
        absl::StrCat("registry ", ref.host, ": HEAD ", path, ": HTTP ", r->status));
  }
  return digest;
}

}  // namespace

RegistryImageDeleter::RegistryImageDeleter(Post post)
    : post_(std::move(post)), worker_([this] { Run(); }) {}

RegistryImageDeleter::~RegistryImageDeleter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  worker_.join();
}

void RegistryImageDeleter::Delete(std::vector<std::string> images,
                                  std::function<void(std::vector<std::string>)> done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(Batch{std::move(images), std::move(done)});
}

void RegistryImageDeleter::Run() {
  for (;;) {
    Batch batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &RegistryImageDeleter::HasWork));
      if (stopping_) return;
      batch = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<std::string> gone;
    for (const std::string& image : batch.images) {
      std::string note;
      absl::Status s = DeleteOne(image, &note);
      if (s.ok()) {
        gone.push_back(image);
        Log()->info("{}: {}", image, note);
      } else {
        Log()->warn("{}: {}; tried again at the next pass", image, s.ToString());
      }
    }
    post_([done = std::move(batch.done), gone = std::move(gone)]() mutable {
      done(std::move(gone));
    });
  }
}

absl::Status RegistryImageDeleter::DeleteOne(const std::string& image, std::string* note) {
  absl::StatusOr<ImageRef> ref = ParseRef(image);
  if (!ref.ok()) {
    *note = absl::StrCat("left alone: ", ref.status().message());
    return absl::OkStatus();  // nothing a retry would change
  }
  httplib::Client http(absl::StrCat("http://", ref->host));
  http.set_connection_timeout(5);
  http.set_read_timeout(10);
  http.set_write_timeout(10);
  absl::StatusOr<std::string> digest = Digest(http, *ref, ref->tag);
  if (!digest.ok()) return digest.status();
  if (digest->empty()) {
    *note = "not in the registry (deleted already)";
    return absl::OkStatus();
  }
  // Deleting a manifest takes every tag pointing at it: look for another one.
  const std::string list = absl::StrCat("/v2/", ref->name, "/tags/list");
  httplib::Result tags = http.Get(list.c_str());
  if (!tags || tags->status != 200) {
    return absl::UnavailableError(absl::StrCat(
        "registry ", ref->host, ": GET ", list, ": ",
        tags ? absl::StrCat("HTTP ", tags->status) : httplib::to_string(tags.error())));
  }
  const nlohmann::json body = nlohmann::json::parse(tags->body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("tags") && body["tags"].is_array()) {
    for (const nlohmann::json& t : body["tags"]) {
      if (!t.is_string() || t.get<std::string>() == ref->tag) continue;
      absl::StatusOr<std::string> other = Digest(http, *ref, t.get<std::string>());
      if (!other.ok()) return other.status();
      if (*other == *digest) {
        *note = absl::StrCat("left: tag '", t.get<std::string>(),
                             "' shares its manifest and would go with it");
        return absl::OkStatus();
      }
    }
  }
  const std::string path = absl::StrCat("/v2/", ref->name, "/manifests/", *digest);
  httplib::Result r = http.Delete(path.c_str());
  if (!r) {
    return absl::UnavailableError(absl::StrCat("registry ", ref->host, ": DELETE ", path, ": ",
                                               httplib::to_string(r.error())));
  }
  if (r->status == 202 || r->status == 404) {
    *note = absl::StrCat("deleted (manifest ", *digest, ")");
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("registry ", ref->host, ": DELETE ", path, ": HTTP ", r->status,
                   r->status == 405 ? " (the registry needs storage: delete: enabled: true)" : ""));
}

}  // namespace musafarm::coordinator
