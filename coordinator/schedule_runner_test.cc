#include "coordinator/schedule_runner.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "content/digest.h"
#include "content/tree.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/secret_cipher.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace musafarm::coordinator {
namespace {

constexpr char kPipeline[] = R"(
name: nightly
secrets: [TOKEN]
stages:
  - name: build
    exec: ["true"]
)";

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, 0), absl::UTCTimeZone());
}

// A coordinator's core and schedule runner over an SQLite file, reopened at
// will as a restart would, under a clock the test moves.
class ScheduleRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mf-sched-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
  }
  void TearDown() override {
    Close();
    std::filesystem::remove_all(dir_);
  }
  void Close() {
    runner_.reset();
    core_.reset();
    blobs_.reset();
    logs_.reset();
    store_.reset();
  }
  // A restart: everything in memory is gone; the store is read again.
  void Open() {
    Close();
    absl::StatusOr<SecretCipher> cipher = SecretCipher::Create(std::string(32, 'k'));
    ASSERT_TRUE(cipher.ok());
    auto store = OpenSqliteStore((dir_ / "db").string(), *cipher);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    logs_ = OpenFileLogStore((dir_ / "logs").string());
    CoreOptions options;
    options.webhook_allow = {"https://hooks.example.com/"};
    core_ = std::make_unique<Core>(store_.get(), logs_.get(), &clock_, options);
    ASSERT_TRUE(core_->Recover().ok());
    runner_ = std::make_unique<ScheduleRunner>(core_.get(), &store_->schedules(), &clock_);
    ASSERT_TRUE(runner_->Load().ok());
    core_->set_retention_pins(runner_.get());
  }
  void SetNow(absl::Time t) { clock_.Advance(t - clock_.Now()); }
  // A content store in the same database, given to the core and the runner.
  void OpenBlobs() {
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> blobs = LocalBlobStore::Open(
        {(dir_ / "blobs").string(), (dir_ / "db").string(), int64_t{1} << 30, &clock_});
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = *std::move(blobs);
    core_->set_blob_store(blobs_.get());
    runner_->set_blob_store(blobs_.get());
  }
  void PutBlob(const std::string& bytes) {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(content::DigestOf(bytes), 0);
    ASSERT_TRUE(up.ok()) << up.status();
    ASSERT_TRUE((*up)->Append(bytes).ok());
    ASSERT_TRUE((*up)->Finish().ok());
  }
  // A tree of one file holding `text`, uploaded; its root.
  v1::Digest PutTree(const std::string& text) {
    PutBlob(text);
    v1::Directory root;
    v1::FileNode* f = root.add_files();
    f->set_name("msg.txt");
    *f->mutable_digest() = content::DigestOf(text);
    const std::string blob = content::SerializeDirectory(root);
    PutBlob(blob);
    return content::DigestOf(blob);
  }
  // After `grace` of disuse, what GC deletes.
  int64_t CollectAfter(absl::Duration grace) {
    clock_.Advance(grace + absl::Minutes(1));
    absl::StatusOr<BlobGcStats> gc = blobs_->CollectGarbage(clock_.Now(), grace);
    EXPECT_TRUE(gc.ok()) << gc.status();
    return gc.ok() ? gc->deleted : -1;
  }
  v1::AddScheduleRequest Request(const std::string& name, const std::string& cron) {
    v1::AddScheduleRequest req;
    req.set_name(name);
    req.set_cron(cron);
    req.set_overlap(v1::OVERLAP_POLICY_QUEUE);
    req.mutable_request()->set_spec_yaml(kPipeline);
    req.mutable_request()->set_spec_file("nightly.yaml");
    (*req.mutable_request()->mutable_secrets())["TOKEN"] = "s3cret-value";
    return req;
  }
  // `schedule run NAME`; without git inputs it answers at once.
  absl::StatusOr<v1::ScheduleRun> RunNow(const std::string& name) {
    absl::StatusOr<v1::ScheduleRun> out = absl::UnknownError("not answered");
    runner_->RunSchedule(name, [&out](absl::StatusOr<v1::ScheduleRun> run) { out = std::move(run); });
    return out;
  }

  v1::Schedule Add(const std::string& name, const std::string& cron, const std::string& tz = "",
                   v1::OverlapPolicy overlap = v1::OVERLAP_POLICY_SKIP) {
    v1::AddScheduleRequest req;
    req.set_name(name);
    req.set_cron(cron);
    req.set_timezone(tz);
    req.set_overlap(overlap);
    req.mutable_request()->set_spec_yaml(kPipeline);
    req.mutable_request()->set_spec_file("nightly.yaml");
    (*req.mutable_request()->mutable_secrets())["TOKEN"] = "s3cret-value";
    absl::StatusOr<v1::Schedule> added = runner_->AddSchedule(req, "rel-eng");
    EXPECT_TRUE(added.ok()) << added.status();
    return added.ok() ? *added : v1::Schedule();
  }
  // Every job the store holds that `schedule` submitted, oldest first.
  std::vector<v1::Job> JobsOf(const std::string& schedule) {
    std::vector<v1::Job> out;
    absl::StatusOr<std::vector<v1::Job>> all = store_->LoadJobs();
    EXPECT_TRUE(all.ok());
    for (v1::Job& job : *all) {
      if (job.schedule() == schedule) out.push_back(std::move(job));
    }
    return out;
  }
  std::vector<v1::ScheduleRun> Runs(const std::string& name) {
    absl::StatusOr<v1::Schedule> s = runner_->GetSchedule(name, 100);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::vector<v1::ScheduleRun>(s->runs().begin(), s->runs().end())
                  : std::vector<v1::ScheduleRun>();
  }
  // Ends every running job (the farm has no agents, so they would run forever).
  void CancelAll(const std::string& schedule) {
    for (const v1::Job& job : JobsOf(schedule)) {
      if (job.state() == v1::JOB_STATE_RUNNING) {
        ASSERT_TRUE(core_->Cancel(job.id()).ok());
      }
    }
  }

  std::filesystem::path dir_;
  testing::FakeClock clock_{Utc(2026, 3, 1, 1, 58)};
  std::unique_ptr<Store> store_;
  std::unique_ptr<LogStore> logs_;
  std::unique_ptr<LocalBlobStore> blobs_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<ScheduleRunner> runner_;
};

TEST_F(ScheduleRunnerTest, FiresAtItsMinuteOnceAndTheStoreRemembers) {
  Add("nightly", "0 2 * * *");
  runner_->Tick();
  SetNow(Utc(2026, 3, 1, 1, 59) + absl::Seconds(59));
  runner_->Tick();
  EXPECT_TRUE(JobsOf("nightly").empty());

  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  runner_->Tick();
  std::vector<v1::Job> jobs = JobsOf("nightly");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_TRUE(jobs[0].batch());
  EXPECT_EQ(jobs[0].submitter(), "rel-eng");
  EXPECT_EQ(TimeOf(jobs[0].scheduled_time()), Utc(2026, 3, 1, 2, 0));

  // A restart within the same minute fires nothing again.
  clock_.Advance(absl::Seconds(20));
  Open();
  runner_->Tick();
  EXPECT_EQ(JobsOf("nightly").size(), 1u);
  std::vector<v1::ScheduleRun> runs = Runs("nightly");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].job_id(), jobs[0].id());
  EXPECT_EQ(runs[0].outcome(), "submitted");
  EXPECT_EQ(runs[0].trigger(), "cron");
  EXPECT_EQ(runs[0].state(), v1::JOB_STATE_RUNNING);
  absl::StatusOr<v1::Schedule> s = runner_->GetSchedule("nightly", 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TimeOf(s->last_fire_time()), Utc(2026, 3, 1, 2, 0));
  EXPECT_EQ(TimeOf(s->next_fire_time()), Utc(2026, 3, 2, 2, 0));
}

TEST_F(ScheduleRunnerTest, SlotsMissedWhileStoppedRunExactlyOnceAfterStart) {
  Add("tenmin", "*/10 * * * *");
  Close();  // the coordinator is down from 01:58 ...
  SetNow(Utc(2026, 3, 1, 3, 5));  // ... to 03:05: seven slots passed
  Open();
  runner_->Tick();
  runner_->Tick();
  std::vector<v1::Job> jobs = JobsOf("tenmin");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(TimeOf(jobs[0].scheduled_time()), Utc(2026, 3, 1, 3, 0));  // the latest of them
  std::vector<v1::ScheduleRun> runs = Runs("tenmin");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].trigger(), "missed");

  // And the schedule goes on from there.
  CancelAll("tenmin");
  SetNow(Utc(2026, 3, 1, 3, 10));
  Open();
  runner_->Tick();
  EXPECT_EQ(JobsOf("tenmin").size(), 2u);
  EXPECT_EQ(Runs("tenmin")[0].trigger(), "cron");
}

TEST_F(ScheduleRunnerTest, PausedDoesNotFireAndResumeStartsFromTheNextSlot) {
  Add("nightly", "0 2 * * *");
  ASSERT_TRUE(runner_->PauseSchedule("nightly", true).ok());
  Open();
  SetNow(Utc(2026, 3, 3, 12, 0));  // two slots pass while paused
  runner_->Tick();
  EXPECT_TRUE(JobsOf("nightly").empty());
  EXPECT_TRUE(Runs("nightly").empty());

  absl::StatusOr<v1::Schedule> resumed = runner_->PauseSchedule("nightly", false);
  ASSERT_TRUE(resumed.ok());
  EXPECT_FALSE(resumed->paused());
  EXPECT_EQ(TimeOf(resumed->next_fire_time()), Utc(2026, 3, 4, 2, 0));
  runner_->Tick();
  EXPECT_TRUE(JobsOf("nightly").empty());  // the passed slots stay passed
  SetNow(Utc(2026, 3, 4, 2, 0));
  Open();
  runner_->Tick();
  EXPECT_EQ(JobsOf("nightly").size(), 1u);
}

TEST_F(ScheduleRunnerTest, OverlapSkipRecordsTheSlotAndSubmitsNothing) {
  Add("hourly", "0 * * * *", "", v1::OVERLAP_POLICY_SKIP);
  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  ASSERT_EQ(JobsOf("hourly").size(), 1u);
  const std::string first = JobsOf("hourly")[0].id();

  Open();  // the running job is known after a restart too
  SetNow(Utc(2026, 3, 1, 3, 0));
  runner_->Tick();
  EXPECT_EQ(JobsOf("hourly").size(), 1u);
  std::vector<v1::ScheduleRun> runs = Runs("hourly");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].job_id(), "");
  EXPECT_EQ(runs[0].outcome(), absl::StrCat("skipped: job ", first, " still running"));

  // Once it ended, the next slot runs.
  CancelAll("hourly");
  SetNow(Utc(2026, 3, 1, 4, 0));
  runner_->Tick();
  EXPECT_EQ(JobsOf("hourly").size(), 2u);
}

TEST_F(ScheduleRunnerTest, OverlapQueueSubmitsWhileThePreviousRunIsGoing) {
  Add("hourly", "0 * * * *", "", v1::OVERLAP_POLICY_QUEUE);
  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  SetNow(Utc(2026, 3, 1, 3, 0));
  runner_->Tick();
  std::vector<v1::Job> jobs = JobsOf("hourly");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(jobs[1].state(), v1::JOB_STATE_RUNNING);
}

// Europe/Berlin springs forward on 2026-03-29 (02:00 -> 03:00: 02:30 does not
// exist) and falls back on 2026-10-25 (02:30 happens twice). Ticking every
// minute across each change, with restarts along the way, gives one run a day.
class BerlinDstTest : public ScheduleRunnerTest {
 protected:
  // The runs' slots from local midnight of `first_day` for three days.
  std::vector<absl::Time> SlotsAcross(int month, int first_day) {
    SetNow(Local(month, first_day, 0, 0));
    Add("berlin", "30 2 * * *", "Europe/Berlin", v1::OVERLAP_POLICY_QUEUE);
    const absl::Time end = Local(month, first_day + 3, 0, 0);
    int minutes = 0;
    while (clock_.Now() < end) {
      clock_.Advance(absl::Minutes(1));
      runner_->Tick();
      if (++minutes % (6 * 60) == 0) Open();
    }
    std::vector<absl::Time> slots;
    for (const v1::Job& job : JobsOf("berlin")) slots.push_back(TimeOf(job.scheduled_time()));
    return slots;
  }
  absl::Time Local(int month, int day, int h, int mi) {
    return absl::FromCivil(absl::CivilSecond(2026, month, day, h, mi, 0), berlin_);
  }
  absl::TimeZone berlin_ = [] {
    absl::TimeZone tz;
    EXPECT_TRUE(absl::LoadTimeZone("Europe/Berlin", &tz));
    return tz;
  }();
};

TEST_F(BerlinDstTest, SpringForwardFiresOnceAtTheTransition) {
  // 02:30 CET (UTC+1) on the 28th and 30th is 01:30 and 00:30 UTC; on the
  // 29th it does not exist and the run is at 03:00 CEST, 01:00 UTC.
  EXPECT_EQ(SlotsAcross(3, 28), (std::vector<absl::Time>{Utc(2026, 3, 28, 1, 30),
                                                         Utc(2026, 3, 29, 1, 0),
                                                         Utc(2026, 3, 30, 0, 30)}));
}

TEST_F(BerlinDstTest, FallBackFiresOnceAtTheFirstOccurrence) {
  // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET) on the
  // 25th: only the first fires.
  EXPECT_EQ(SlotsAcross(10, 24), (std::vector<absl::Time>{Utc(2026, 10, 24, 0, 30),
                                                          Utc(2026, 10, 25, 0, 30),
                                                          Utc(2026, 10, 26, 1, 30)}));
}

TEST_F(ScheduleRunnerTest, SecretsAreSealedAndNeverReturned) {
  v1::Schedule added = Add("nightly", "0 2 * * *");
  EXPECT_TRUE(added.request().secrets().empty());
  ASSERT_EQ(added.secrets_size(), 1);
  EXPECT_EQ(added.secrets(0), "TOKEN");
  absl::StatusOr<std::vector<v1::Schedule>> all = runner_->ListSchedules();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].DebugString().find("s3cret-value"), std::string::npos);

  // The run gets the value.
  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>> secrets =
      store_->LoadSecrets();
  ASSERT_TRUE(secrets.ok());
  ASSERT_EQ(JobsOf("nightly").size(), 1u);
  EXPECT_EQ((*secrets)[JobsOf("nightly")[0].id()]["TOKEN"], "s3cret-value");

  // Nothing in the files holds it in clear.
  Close();
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(dir_ / absl::StrCat("db", suffix), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("s3cret-value"), std::string::npos) << "db" << suffix;
  }
}

TEST_F(ScheduleRunnerTest, WebhooksAreKeptSealedAndGoWithEachRun) {
  v1::AddScheduleRequest req;
  req.set_name("nightly");
  req.set_cron("0 2 * * *");
  req.mutable_request()->set_spec_yaml(kPipeline);
  v1::Webhook* hook = req.mutable_request()->add_webhooks();
  hook->set_url("https://hooks.example.com/T0/hook-token-123");
  hook->set_format(v1::WEBHOOK_FORMAT_SLACK);
  absl::StatusOr<v1::Schedule> added = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(added->request().webhooks().empty());
  ASSERT_EQ(added->webhook_targets_size(), 1);
  EXPECT_EQ(added->webhook_targets(0), "https://hooks.example.com/...");
  EXPECT_TRUE(added->secrets().empty());  // webhooks are not listed as secrets

  Open();
  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  ASSERT_EQ(JobsOf("nightly").size(), 1u);
  ASSERT_EQ(JobsOf("nightly")[0].webhook_targets_size(), 1);
  Close();
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(dir_ / absl::StrCat("db", suffix), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("hook-token-123"), std::string::npos) << "db" << suffix;
  }

  // One outside --webhook-allow is refused when the schedule is added.
  Open();
  req.set_name("other");
  req.mutable_request()->mutable_webhooks(0)->set_url("https://evil.example/x");
  absl::StatusOr<v1::Schedule> refused = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(absl::IsInvalidArgument(refused.status()));
  EXPECT_NE(refused.status().message().find("evil.example"), std::string::npos);
}

TEST_F(ScheduleRunnerTest, RefusesBadInputNamingIt) {
  v1::AddScheduleRequest req;
  req.set_name("nightly");
  req.set_cron("61 2 * * *");
  req.mutable_request()->set_spec_yaml(kPipeline);
  absl::StatusOr<v1::Schedule> s = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(absl::IsInvalidArgument(s.status()));
  EXPECT_NE(s.status().message().find("minute"), std::string::npos) << s.status();

  req.set_cron("0 2 * * *");
  req.set_timezone("Mars/Olympus");
  s = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(absl::IsInvalidArgument(s.status()));
  EXPECT_NE(s.status().message().find("Mars/Olympus"), std::string::npos) << s.status();

  req.set_timezone("");
  req.mutable_request()->set_spec_yaml("name: x\nstages: []\n");
  req.mutable_request()->set_spec_file("broken.yaml");
  s = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(absl::IsInvalidArgument(s.status()));
  EXPECT_NE(s.status().message().find("broken.yaml"), std::string::npos) << s.status();

  req.set_name("no spaces");
  s = runner_->AddSchedule(req, "rel-eng");
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();

  Add("nightly", "0 2 * * *");
  req.set_name("nightly");
  req.mutable_request()->set_spec_yaml(kPipeline);
  EXPECT_TRUE(absl::IsAlreadyExists(runner_->AddSchedule(req, "rel-eng").status()));
  EXPECT_TRUE(absl::IsNotFound(runner_->GetSchedule("nope", 0).status()));
  EXPECT_TRUE(absl::IsNotFound(RunNow("nope").status()));
}

TEST_F(ScheduleRunnerTest, RunNowRemoveAndTheLastRunsArePinned) {
  Add("nightly", "0 2 * * *", "", v1::OVERLAP_POLICY_QUEUE);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::ScheduleRun> run = RunNow("nightly");
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->trigger(), "manual");
    ids.push_back(run->job_id());
  }
  // Run now leaves the cron's slots alone.
  absl::StatusOr<v1::Schedule> s = runner_->GetSchedule("nightly", 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TimeOf(s->next_fire_time()), Utc(2026, 3, 1, 2, 0));
  Open();
  EXPECT_EQ(runner_->PinnedJobs(), (std::set<std::string>{ids[1], ids[2]}));

  ASSERT_TRUE(runner_->RemoveSchedule("nightly").ok());
  EXPECT_TRUE(runner_->PinnedJobs().empty());
  Open();
  absl::StatusOr<std::vector<v1::Schedule>> all = runner_->ListSchedules();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  EXPECT_EQ(JobsOf("nightly").size(), 3u);  // its jobs stay
}

// `schedule add --context src=DIR` (issue 17): the uploaded tree is pinned for
// the schedule, so GC keeps it while no job does; every run builds it; removing
// the schedule unpins it. A tree the store lacks is refused at add.
TEST_F(ScheduleRunnerTest, AnUploadedInputIsPinnedForTheScheduleAndEveryRunBuildsIt) {
  OpenBlobs();
  v1::AddScheduleRequest missing = Request("nightly", "0 2 * * *");
  v1::JobInput* gone = missing.mutable_request()->add_inputs();
  gone->set_name("src");
  gone->set_source("dir:/home/dev/src");
  *gone->mutable_tree() = content::DigestOf("never uploaded");
  absl::StatusOr<v1::Schedule> refused = runner_->AddSchedule(missing, "rel-eng");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("input 'src'"), std::string::npos) << refused.status();

  const v1::Digest tree = PutTree("first");
  v1::AddScheduleRequest req = Request("nightly", "0 2 * * *");
  v1::JobInput* in = req.mutable_request()->add_inputs();
  in->set_name("src");
  in->set_source("dir:/home/dev/src");
  *in->mutable_tree() = tree;
  ASSERT_TRUE(runner_->AddSchedule(req, "rel-eng").ok());
  EXPECT_EQ(CollectAfter(absl::Hours(1)), 0);  // the schedule's pin keeps it

  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<v1::ScheduleRun> run = RunNow("nightly");
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_FALSE(run->job_id().empty()) << run->outcome();
    ids.push_back(run->job_id());
  }
  for (const v1::Job& job : JobsOf("nightly")) {
    ASSERT_EQ(job.inputs_size(), 1);
    EXPECT_EQ(job.inputs(0).tree().sha256(), tree.sha256());
  }
  // Retention drops the jobs' pins: the schedule's still holds the tree,
  // also across a restart.
  CancelAll("nightly");
  for (const std::string& id : ids) ASSERT_TRUE(blobs_->Unpin(id).ok());
  Open();
  OpenBlobs();
  EXPECT_EQ(CollectAfter(absl::Hours(1)), 0);
  ASSERT_TRUE(runner_->RemoveSchedule("nightly").ok());
  EXPECT_EQ(CollectAfter(absl::Hours(1)), 2);  // the directory and its file
}

// A git input is resolved again at each run, off the loop (the resolver
// here answers when the test says): the slot waits for it and fires once;
// a resolution that fails is recorded; the URL's credentials reach the
// resolver but are stored sealed and never shown.
TEST_F(ScheduleRunnerTest, AGitInputIsResolvedAtEachRunAndItsCredentialsAreSealed) {
  OpenBlobs();
  struct Pending {
    v1::SubmitRequest request;
    std::function<void(absl::StatusOr<v1::SubmitRequest>)> done;
  };
  std::vector<Pending> pending;
  auto resolver = [&pending](v1::SubmitRequest request,
                             std::function<void(absl::StatusOr<v1::SubmitRequest>)> done) {
    pending.push_back({std::move(request), std::move(done)});
  };
  runner_->set_input_resolver(resolver);
  v1::AddScheduleRequest req = Request("nightly", "0 2 * * *");
  v1::JobInput* in = req.mutable_request()->add_inputs();
  in->set_name("src");
  in->set_source("git+https://bob:hunter2@git.example.com/t/repo.git#main");
  v1::AddScheduleRequest bad = req;
  bad.set_name("bad");
  bad.mutable_request()->mutable_inputs(0)->set_source("git+ftp://h/r");
  EXPECT_TRUE(absl::IsInvalidArgument(runner_->AddSchedule(bad, "rel-eng").status()));
  absl::StatusOr<v1::Schedule> added = runner_->AddSchedule(req, "rel-eng");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->request().inputs(0).source(), "git+https://git.example.com/t/repo.git#main");
  Open();  // stored: the schedule still knows the credentials after a restart
  OpenBlobs();
  runner_->set_input_resolver(resolver);

  // Each resolution: the branch's head has a tree of its own.
  auto resolve = [&](const std::string& text, const std::string& commit) {
    ASSERT_EQ(pending.size(), 1u);
    Pending p = std::move(pending.front());
    pending.clear();
    EXPECT_EQ(p.request.inputs(0).source(), "git+https://bob:hunter2@git.example.com/t/repo.git#main");
    v1::JobInput* resolved = p.request.mutable_inputs(0);
    *resolved->mutable_tree() = PutTree(text);
    resolved->set_commit(commit);
    resolved->set_source("git+https://git.example.com/t/repo.git#main");
    p.done(std::move(p.request));
  };
  SetNow(Utc(2026, 3, 1, 2, 0));
  runner_->Tick();
  runner_->Tick();  // resolving: the slot is not fired twice
  EXPECT_EQ(pending.size(), 1u);
  EXPECT_TRUE(JobsOf("nightly").empty());
  absl::StatusOr<v1::ScheduleRun> busy = RunNow("nightly");
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->outcome(), "skipped: the previous run's git inputs are being resolved");
  resolve("first", "c1");
  SetNow(Utc(2026, 3, 2, 2, 0));
  runner_->Tick();
  resolve("second", "c2");
  std::vector<v1::Job> jobs = JobsOf("nightly");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].inputs(0).commit(), "c1");
  EXPECT_EQ(jobs[1].inputs(0).commit(), "c2");
  EXPECT_NE(jobs[0].inputs(0).tree().sha256(), jobs[1].inputs(0).tree().sha256());
  EXPECT_EQ(jobs[1].inputs(0).source(), "git+https://git.example.com/t/repo.git#main");
  absl::StatusOr<v1::Schedule> s = runner_->GetSchedule("nightly", 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TimeOf(s->next_fire_time()), Utc(2026, 3, 3, 2, 0));
  EXPECT_EQ(s->DebugString().find("hunter2"), std::string::npos);

  // A run now whose resolution fails is recorded with git's reason.
  absl::StatusOr<v1::ScheduleRun> answered = absl::UnknownError("not yet");
  runner_->RunSchedule("nightly", [&](absl::StatusOr<v1::ScheduleRun> r) { answered = r; });
  EXPECT_TRUE(absl::IsUnknown(answered.status()));  // waits for git
  ASSERT_EQ(pending.size(), 1u);
  pending.front().done(absl::FailedPreconditionError("input 'src': no ref 'main'"));
  ASSERT_TRUE(answered.ok()) << answered.status();
  EXPECT_EQ(answered->outcome(), "error: input 'src': no ref 'main'");
  EXPECT_EQ(JobsOf("nightly").size(), 2u);
}

}  // namespace
}  // namespace musafarm::coordinator
