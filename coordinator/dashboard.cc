#include "coordinator/dashboard.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/http_auth.h"
#include "coordinator/log_backlog.h"
#include "coordinator/nightly_diff.h"
#include "coordinator/user_actions.h"
#include "coordinator/web_assets.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace musafarm::coordinator {
namespace {

using nlohmann::json;

// Nothing the page loads may come from elsewhere, and no inline script runs:
// data the page shows can never become code.
void SecurityHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                 "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                 "form-action 'self'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cache-Control", "no-store");
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);  // our own messages convert
  return out;
}

void SendJson(httplib::Response& res, const std::string& body) {
  SecurityHeaders(res);
  res.set_content(body, "application/json; charset=utf-8");
}

// Log bytes as JSON text: invalid UTF-8 (a task may print anything) becomes U+FFFD.
std::string LogJson(uint64_t offset, const std::string& data) {
  return json{{"offset", offset}, {"data", data}}.dump(-1, ' ', false,
                                                       json::error_handler_t::replace);
}

uint64_t ParamU64(const httplib::Request& req, const char* name, uint64_t fallback) {
  uint64_t v = fallback;
  if (req.has_param(name) && !absl::SimpleAtoi(req.get_param_value(name), &v)) return fallback;
  return v;
}

// One event stream's watcher: the core loop queues, the stream's pool thread takes.
// One event stream of the dashboard: the core queues events, the HTTP
// thread takes them all and writes them. It counts the log bytes queued for the
// hub's flow control (WatchHub), as the gRPC WatchStream does.
class StreamWatcher : public Watcher {
 public:
  // `drained` is called (from the HTTP thread) for a drain notice due.
  explicit StreamWatcher(std::function<void()> drained) : drained_(std::move(drained)) {}

  void Send(v1::WatchEvent event) override {
    absl::MutexLock lock(&mu_);
    if (event.has_log()) backlog_.Queued(event.log().data().size());
    queue_.push_back(std::move(event));
  }
  void Finish(const absl::Status&) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  uint64_t UnwrittenLogBytes() const override {
    absl::MutexLock lock(&mu_);
    return backlog_.unwritten();
  }
  void RequestDrainNotice(uint64_t at_most) override {
    bool due = false;
    {
      absl::MutexLock lock(&mu_);
      due = backlog_.Ask(at_most);
    }
    if (due) drained_();
  }
  // Waits up to `timeout` for events; true when the stream has ended. What it
  // takes counts as written: the caller writes it before taking again.
  bool Take(std::deque<v1::WatchEvent>* out, absl::Duration timeout) {
    bool drained = false;
    bool done = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &StreamWatcher::HasNews), timeout);
      out->swap(queue_);
      queue_.clear();
      drained = backlog_.Written(backlog_.unwritten());
      done = done_;
    }
    if (drained) drained_();
    return done;
  }

 private:
  bool HasNews() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || done_; }
  const std::function<void()> drained_;
  mutable absl::Mutex mu_;
  std::deque<v1::WatchEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  LogBacklog backlog_ ABSL_GUARDED_BY(mu_);
};

std::string SseEvent(const v1::WatchEvent& e) {
  switch (e.kind_case()) {
    case v1::WatchEvent::kSnapshot:
      return absl::StrCat("event: snapshot\ndata: ", ToJson(e.snapshot()), "\n\n");
    case v1::WatchEvent::kTask:
      return absl::StrCat("event: task\ndata: ", ToJson(e.task()), "\n\n");
    case v1::WatchEvent::kLog:
      // The id is the offset to resume from: EventSource sends it back as Last-Event-ID.
      return absl::StrCat("id: ", e.log().offset() + e.log().data().size(), "\nevent: log\ndata: ",
                          LogJson(e.log().offset(), e.log().data()), "\n\n");
    case v1::WatchEvent::kFinished:
      return absl::StrCat("event: finished\ndata: ", ToJson(e.finished()), "\n\n");
    default:
      return "";
  }
}

std::string RoleOf(const Principal& p) { return std::string(RoleName(p.role)); }

}  // namespace

Dashboard::Dashboard(DashboardOptions options) : options_(options) {
  unsigned char key[32];
  RAND_bytes(key, sizeof(key));
  csrf_key_.assign(reinterpret_cast<const char*>(key), sizeof(key));
}

void Dashboard::Attach(EventLoop* loop, UserApi* api, const AccessControl* access,
                       UserAdmin* admin) {
  loop_ = loop;
  api_ = api;
  access_ = access;
  admin_ = admin;
  attached_.store(true, std::memory_order_release);
}

std::string Dashboard::CsrfFor(const std::string& bearer) const {
  const std::string in = csrf_key_ + bearer;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

template <typename Fn>
auto Dashboard::OnLoop(Fn fn) {
  using R = decltype(fn());
  std::optional<R> out;
  loop_->RunSync([&] { out.emplace(fn()); });
  return *std::move(out);
}

void Dashboard::AddRoutes(httplib::Server& routes) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    const WebAsset& asset = kWebAssets[i];
    routes.Get(asset.path, [&asset](const httplib::Request&, httplib::Response& res) {
      SecurityHeaders(res);
      res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.type);
    });
  }

  // Every API route: attached, authenticated, allowed `action`; else an error answer.
  auto guard = [this](const httplib::Request& req, httplib::Response& res,
                      Action action) -> std::optional<Principal> {
    SecurityHeaders(res);
    if (!Attached()) {
      WriteError(res, absl::UnavailableError(NotAttachedReason("recovering; try again shortly")));
      return std::nullopt;
    }
    absl::StatusOr<Principal> who = Check(*access_, req, action);
    if (!who.ok()) {
      WriteError(res, who.status());
      return std::nullopt;
    }
    return *who;
  };
  // POSTs also carry the session's CSRF token in X-CSRF-Token.
  auto csrf_ok = [this](const httplib::Request& req, httplib::Response& res) {
    const std::string want = CsrfFor(BearerOf(req));
    const std::string got = req.get_header_value("X-CSRF-Token");
    if (got.size() != want.size() || CRYPTO_memcmp(got.data(), want.data(), want.size()) != 0) {
      WriteError(res, absl::PermissionDeniedError(
                          "missing or wrong CSRF token (X-CSRF-Token): reload the page"));
      return false;
    }
    return true;
  };

  routes.Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
    SecurityHeaders(res);
    if (!Attached()) {
      return WriteError(res, absl::UnavailableError(NotAttachedReason("recovering")));
    }
    const std::string token = req.get_param_value("token");
    absl::StatusOr<Principal> who = access_->Authenticate(token, "web", absl::Now());
    if (!who.ok()) return WriteError(res, who.status());
    // The token stays out of reach of scripts (HttpOnly) and of other sites' requests (Strict).
    res.set_header("Set-Cookie", absl::StrCat(kSessionCookie, "=", token,
                                              "; Path=/; HttpOnly; SameSite=Strict",
                                              options_.tls ? "; Secure" : ""));
    SendJson(res, json{{"user", who->user}, {"role", RoleOf(*who)}, {"csrf", CsrfFor(token)}}.dump());
  });
  routes.Post("/logout", [this, csrf_ok](const httplib::Request& req, httplib::Response& res) {
    SecurityHeaders(res);
    if (!csrf_ok(req, res)) return;
    res.set_header("Set-Cookie", absl::StrCat(kSessionCookie, "=; Path=/; Max-Age=0; HttpOnly; "
                                              "SameSite=Strict",
                                              options_.tls ? "; Secure" : ""));
    SendJson(res, "{}");
  });
  routes.Get("/api/session", [this, guard](const httplib::Request& req, httplib::Response& res) {
    std::optional<Principal> who = guard(req, res, Action::kRead);
    if (!who) return;
    const bool may_cancel = access_->Authorize(*who, Action::kCancelJob, who->user).ok();
    SendJson(res, json{{"user", who->user},
                       {"role", RoleOf(*who)},
                       {"csrf", CsrfFor(BearerOf(req))},
                       {"may_cancel", may_cancel},
                       {"insecure", who->insecure}}
                      .dump(-1, ' ', false, json::error_handler_t::replace));
  });
  routes.Get("/api/agents", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res, Action::kRead)) return;
    std::vector<v1::Agent> agents = OnLoop([this] { return api_->ListAgents(); });
    std::string out = "[";
    for (size_t i = 0; i < agents.size(); ++i) absl::StrAppend(&out, i ? "," : "", ToJson(agents[i]));
    SendJson(res, out + "]");
  });
  // Read-only, as `musafarm coordinators`: which one is active since when.
  routes.Get("/api/coordinators", [this, guard](const httplib::Request& req,
                                                httplib::Response& res) {
    if (!guard(req, res, Action::kRead)) return;
    if (!options_.coordinators) return SendJson(res, "{}");
    absl::StatusOr<v1::ListCoordinatorsResponse> list = options_.coordinators();
    if (!list.ok()) return WriteError(res, list.status());
    SendJson(res, ToJson(*list));
  });
  routes.Get("/api/jobs", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res, Action::kRead)) return;
    // Filtered on the core, as `musafarm jobs --user --state --name`: the 500
    // newest that match, not the ones among the 500 newest of everyone's.
    JobFilter filter;
    filter.limit = 500;
    filter.submitter = req.get_param_value("user");
    filter.name_contains = req.get_param_value("name");
    if (const std::string state = absl::AsciiStrToUpper(req.get_param_value("state"));
        !state.empty()) {
      v1::JobState s;
      if (!v1::JobState_Parse("JOB_STATE_" + state, &s)) {
        SendJson(res, "[]");  // no job is in a state that does not exist
        return;
      }
      filter.states.push_back(s);
    }
    std::vector<v1::Job> jobs = OnLoop([this, &filter] { return api_->ListJobs(filter); });
    std::string out = "[";
    for (size_t i = 0; i < jobs.size(); ++i) absl::StrAppend(&out, i ? "," : "", ToJson(jobs[i]));
    SendJson(res, out + "]");
  });
  routes.Get("/api/job", [this, guard](const httplib::Request& req, httplib::Response& res) {
    std::optional<Principal> who = guard(req, res, Action::kRead);
    if (!who) return;
    const std::string id = req.get_param_value("id");
    // A schedule's run also carries its nightly diff against the previous
    // run: the same comparison its webhook body makes (issue 14, item 3).
    std::optional<NightlyDiff> diff;
    absl::StatusOr<v1::Job> job = OnLoop([&] {
      absl::StatusOr<v1::Job> found = api_->GetJob(id);
      if (!found.ok()) return found;
      if (absl::StatusOr<v1::Job> previous = api_->PreviousRun(*found); previous.ok()) {
        diff = CompareRuns(*previous, *found);
      }
      return found;
    });
    if (!job.ok()) return WriteError(res, job.status());
    // Whether to offer Rerun: the caller's role against this job's submitter,
    // decided here as /api/rerun will (the page never guesses the rules).
    json out = json::parse(ToJson(*job));
    out["may_rerun"] = access_->Authorize(*who, Action::kRerunJob, job->submitter()).ok();
    if (diff.has_value()) out["nightly_diff"] = DiffToJson(*diff);
    SendJson(res, out.dump(-1, ' ', false, json::error_handler_t::replace));
  });
  routes.Get("/api/log", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res, Action::kRead)) return;
    v1::GetLogRequest get;
    get.set_task_id(req.get_param_value("task"));
    get.set_offset(ParamU64(req, "offset", 0));
    get.set_limit(std::min<uint64_t>(ParamU64(req, "limit", options_.log_tail), 4 << 20));
    absl::StatusOr<v1::GetLogResponse> log = OnLoop([&] { return api_->GetLog(get); });
    if (!log.ok()) return WriteError(res, log.status());
    json j = json::parse(LogJson(log->offset(), log->data()));
    j["size"] = log->size();
    j["complete"] = log->complete();
    SendJson(res, j.dump(-1, ' ', false, json::error_handler_t::replace));
  });
  routes.Get("/api/artifact", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res, Action::kRead)) return;
    v1::GetArtifactRequest get;
    get.set_task_id(req.get_param_value("task"));
    get.set_name(req.get_param_value("name"));
    std::string body;
    for (;;) {
      get.set_offset(body.size());
      absl::StatusOr<v1::GetArtifactResponse> part = OnLoop([&] { return api_->GetArtifact(get); });
      if (!part.ok()) return WriteError(res, part.status());
      body += part->data();
      if (part->data().empty() || body.size() >= part->size()) break;
    }
    std::string file = get.name();
    for (char& c : file) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
    }
    res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", file, "\""));
    res.set_content(body, "application/octet-stream");
  });
  routes.Post("/api/cancel", [this, guard, csrf_ok](const httplib::Request& req,
                                                    httplib::Response& res) {
    SecurityHeaders(res);
    if (!csrf_ok(req, res)) return;
    // Authorized on the loop against the job's submitter, and audited, exactly as over gRPC.
    std::optional<Principal> who = guard(req, res, Action::kRead);
    if (!who) return;
    const std::string id = req.get_param_value("id");
    const std::string peer = absl::StrCat("http:", req.remote_addr, ":", req.remote_port);
    absl::StatusOr<v1::CancelResponse> done =
        OnLoop([&] { return CancelJobAs(*api_, *access_, admin_, *who, peer, id); });
    if (!done.ok()) return WriteError(res, done.status());
    SendJson(res, ToJson(*done));
  });

  routes.Post("/api/rerun", [this, guard, csrf_ok](const httplib::Request& req,
                                                   httplib::Response& res) {
    SecurityHeaders(res);
    if (!csrf_ok(req, res)) return;
    // As /api/cancel: authorized on the loop against the job's submitter, audited.
    std::optional<Principal> who = guard(req, res, Action::kRead);
    if (!who) return;
    v1::RerunRequest rerun;
    rerun.set_job_id(req.get_param_value("id"));
    rerun.set_failed_only(req.get_param_value("failed") == "1");
    // No secrets: a page does not ask for them; a job that had some says
    // which to give (`musafarm rerun --secret`).
    const std::string peer = absl::StrCat("http:", req.remote_addr, ":", req.remote_port);
    absl::StatusOr<v1::Job> job =
        OnLoop([&] { return RerunJobAs(*api_, *access_, admin_, *who, peer, rerun); });
    if (!job.ok()) return WriteError(res, job.status());
    job->clear_tasks();  // the page opens the new job's own
    SendJson(res, ToJson(*job));
  });

  // Event streams: job (task changes) and a task's log from an offset.
  auto stream = [this, guard](const httplib::Request& req, httplib::Response& res,
                              v1::WatchJobRequest watch) {
    if (!guard(req, res, Action::kRead)) return;
    if (streams_.fetch_add(1) >= options_.max_streams) {
      streams_.fetch_sub(1);
      return WriteError(res, absl::UnavailableError(
                                 "too many live views open; close some tabs or try again"));
    }
    const UserApi::WatchId id = next_watch_++;
    auto watcher = std::make_shared<StreamWatcher>(
        [loop = loop_, api = api_, id] { loop->Post([api, id] { api->WatcherDrained(id); }); });
    absl::Status added = OnLoop([&] { return api_->AddWatcher(id, watch, watcher); });
    if (!added.ok()) {
      streams_.fetch_sub(1);
      return WriteError(res, added);
    }
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, watcher](size_t, httplib::DataSink& sink) {
          if (stopping_.load(std::memory_order_acquire)) return false;
          std::deque<v1::WatchEvent> events;
          const bool done = watcher->Take(&events, absl::Seconds(2));
          std::string out;
          for (const v1::WatchEvent& e : events) out += SseEvent(e);
          if (out.empty()) out = ": idle\n\n";  // finds closed connections
          if (!sink.write(out.data(), out.size())) return false;
          if (done) sink.done();
          return true;
        },
        [this, id](bool) {
          loop_->Post([api = api_, id] { api->RemoveWatcher(id); });
          streams_.fetch_sub(1);
        });
  };
  routes.Get("/api/job-events", [stream](const httplib::Request& req, httplib::Response& res) {
    v1::WatchJobRequest watch;
    watch.set_job_id(req.get_param_value("id"));
    stream(req, res, std::move(watch));
  });
  routes.Get("/api/log-events", [stream](const httplib::Request& req, httplib::Response& res) {
    const std::string task = req.get_param_value("task");
    v1::WatchJobRequest watch;
    watch.set_job_id(task.substr(0, task.find('/')));
    watch.set_task_id(task);
    watch.set_logs(true);
    // Resumable: EventSource reconnects with the last id it saw, the next offset.
    uint64_t from = ParamU64(req, "from", 0);
    if (req.has_header("Last-Event-ID")) {
      (void)absl::SimpleAtoi(req.get_header_value("Last-Event-ID"), &from);
    }
    (*watch.mutable_log_offsets())[task] = from;
    stream(req, res, std::move(watch));
  });
}

}  // namespace musafarm::coordinator
