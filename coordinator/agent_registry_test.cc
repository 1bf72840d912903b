#include "coordinator/agent_registry.h"

#include "gtest/gtest.h"
#include "tests/fakes/fake_agent_connection.h"

namespace musafarm::coordinator {
namespace {

using FakeConnection = testing::FakeAgentConnection;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

AgentRegistry::Timing Timing() {
  AgentRegistry::Timing t;
  t.heartbeat_timeout = absl::Seconds(10);
  t.agent_lost_timeout = absl::Seconds(5);
  t.restart_grace = absl::Seconds(30);
  return t;
}

// Every registration of one name comes from the same agent instance unless a
// test says otherwise.
v1::Register Reg(const std::string& name, int slots, int gpus = 0,
                 const std::string& secret = "instance-1") {
  v1::Register r;
  r.set_name(name);
  r.set_instance_secret(secret);
  r.set_slots(slots);
  r.add_labels("pool=a");
  r.mutable_capabilities()->set_gpus(gpus);
  return r;
}

TEST(AgentRegistryTest, RegisterBindsTheAgentAndRefusesBadRegistrations) {
  AgentRegistry reg(Timing());
  auto conn = std::make_shared<FakeConnection>();
  const auto id = reg.Connect(conn, kT0);
  EXPECT_EQ(reg.AgentOn(id), nullptr);
  v1::Register bad = Reg("", 1);
  EXPECT_TRUE(absl::IsInvalidArgument(reg.Register(id, bad, kT0).status()));
  bad = Reg("h1", 0);
  EXPECT_TRUE(absl::IsInvalidArgument(reg.Register(id, bad, kT0).status()));
  bad = Reg("h1", 1);
  bad.add_labels("bad label");
  EXPECT_TRUE(absl::IsInvalidArgument(reg.Register(id, bad, kT0).status()));

  absl::StatusOr<AgentRegistry::Agent*> a = reg.Register(id, Reg("h1", 2), kT0);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(reg.AgentOn(id), *a);
  EXPECT_EQ((*a)->info.state(), v1::AGENT_STATE_CONNECTED);
  EXPECT_TRUE((*a)->accepting());
  EXPECT_EQ((*a)->free_slots(), 2);
  EXPECT_TRUE(absl::IsInvalidArgument(reg.Register(id, Reg("h1", 2), kT0).status()))
      << "register twice on one stream";
}

// A stream whose certificate names 'a' registers as 'a' only; the agent list
// says how its name was established.
TEST(AgentRegistryTest, ACertifiedStreamRegistersOnlyUnderItsCertificatesName) {
  AgentRegistry reg(Timing());
  auto conn = std::make_shared<FakeConnection>();
  conn->identity = AgentIdentity{"a", "1f", "sha256:ab", absl::FromUnixSeconds(2000)};
  const auto id = reg.Connect(conn, kT0);
  absl::StatusOr<AgentRegistry::Agent*> b = reg.Register(id, Reg("b", 1), kT0);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(b.status().message(), "certificate names 'a'; cannot register as 'b'");
  EXPECT_EQ(reg.AgentOn(id), nullptr);
  EXPECT_EQ(reg.agents().count("b"), 0u);

  absl::StatusOr<AgentRegistry::Agent*> a = reg.Register(id, Reg("a", 1), kT0);
  ASSERT_TRUE(a.ok()) << a.status();
  const v1::Agent shown = (*a)->Snapshot();
  EXPECT_EQ(shown.authentication(), "certificate");
  EXPECT_EQ(shown.certificate_fingerprint(), "sha256:ab");
  EXPECT_EQ(shown.certificate_expire_time().seconds(), 2000);

  const auto plain = reg.Connect(std::make_shared<FakeConnection>(), kT0);
  absl::StatusOr<AgentRegistry::Agent*> c = reg.Register(plain, Reg("c", 1), kT0);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Snapshot().authentication(), "none");
  EXPECT_EQ((*c)->Snapshot().certificate_fingerprint(), "");
  EXPECT_FALSE((*c)->Snapshot().has_certificate_expire_time());
}

TEST(AgentRegistryTest, TheNewestStreamOfAnAgentWins) {
  AgentRegistry reg(Timing());
  auto old_conn = std::make_shared<FakeConnection>();
  auto new_conn = std::make_shared<FakeConnection>();
  const auto old_id = reg.Connect(old_conn, kT0);
  ASSERT_TRUE(reg.Register(old_id, Reg("h1", 1), kT0).ok());
  const auto new_id = reg.Connect(new_conn, kT0);
  ASSERT_TRUE(reg.Register(new_id, Reg("h1", 1), kT0).ok());
  EXPECT_TRUE(absl::IsAborted(old_conn->closed));
  EXPECT_EQ(reg.Gone(old_id), nullptr);  // the old stream's end changes nothing
  EXPECT_EQ(reg.Find("h1")->conn, new_id);
  v1::CoordinatorMessage msg;
  msg.mutable_drain()->set_draining(true);
  reg.Send("h1", msg);
  EXPECT_EQ(new_conn->sent.size(), 1u);
  EXPECT_TRUE(old_conn->sent.empty());
}

TEST(AgentRegistryTest, AnotherInstanceIsRefusedWhileTheHolderIsConnectedAndAlive) {
  AgentRegistry reg(Timing());
  auto first = std::make_shared<FakeConnection>();
  first->peer = "ipv4:10.0.0.1:5000";
  const auto first_id = reg.Connect(first, kT0);
  ASSERT_TRUE(reg.Register(first_id, Reg("h1", 1, 0, "instance-1"), kT0).ok());
  // Another secret, and no secret at all (an agent from before the field).
  for (const std::string& secret : {std::string("instance-2"), std::string()}) {
    SCOPED_TRACE(secret);
    auto second = std::make_shared<FakeConnection>();
    second->peer = "ipv4:10.0.0.2:6000";
    const auto second_id = reg.Connect(second, kT0);
    absl::StatusOr<AgentRegistry::Agent*> got =
        reg.Register(second_id, Reg("h1", 1, 0, secret), kT0 + absl::Seconds(9));
    ASSERT_TRUE(absl::IsAlreadyExists(got.status())) << got.status();
    EXPECT_EQ(std::string(got.status().message()),
              "agent name h1 is held by another instance connected from ipv4:10.0.0.1:5000 since "
              "1970-01-01T00:16:40Z; stop the other agent or give this one another --name");
    EXPECT_EQ(got.status().message().find("instance-"), absl::string_view::npos);
    EXPECT_TRUE(first->closed.ok()) << "the holder keeps its stream";
    EXPECT_EQ(reg.Find("h1")->conn, first_id);
    EXPECT_EQ(reg.AgentOn(second_id), nullptr);
    EXPECT_EQ(reg.Gone(second_id), nullptr) << "the refused stream's end changes nothing";
  }
  EXPECT_EQ(reg.Find("h1")->info.peer(), "ipv4:10.0.0.1:5000");
}

TEST(AgentRegistryTest, ANewInstanceTakesTheNameOnceTheHolderIsGoneOrSilent) {
  AgentRegistry reg(Timing());
  // The holder's stream ended: another instance, even one without a secret.
  auto first = std::make_shared<FakeConnection>();
  const auto first_id = reg.Connect(first, kT0);
  AgentRegistry::Agent* a = *reg.Register(first_id, Reg("h1", 1, 0, "instance-1"), kT0);
  reg.Hold(*a, "t1", {});
  ASSERT_EQ(reg.Gone(first_id), a);
  reg.Disconnect(*a, absl::OkStatus(), kT0);
  auto old_agent = std::make_shared<FakeConnection>();
  const auto old_id = reg.Connect(old_agent, kT0);
  ASSERT_TRUE(reg.Register(old_id, Reg("h1", 1, 0, ""), kT0 + absl::Seconds(1)).ok());
  EXPECT_EQ(reg.Find("h1")->conn, old_id);
  EXPECT_EQ(reg.Find("h1")->held.count("t1"), 1u) << "the core reconciles what it holds";

  // The holder is connected but silent past the heartbeat deadline.
  auto third = std::make_shared<FakeConnection>();
  const auto third_id = reg.Connect(third, kT0);
  EXPECT_TRUE(absl::IsAlreadyExists(
      reg.Register(third_id, Reg("h1", 1, 0, "instance-3"), kT0 + absl::Seconds(11)).status()));
  auto fourth = std::make_shared<FakeConnection>();
  const auto fourth_id = reg.Connect(fourth, kT0);
  ASSERT_TRUE(reg.Register(fourth_id, Reg("h1", 1, 0, "instance-3"), kT0 + absl::Seconds(12)).ok());
  EXPECT_TRUE(absl::IsAborted(old_agent->closed)) << "the silent holder's stream is closed";
  EXPECT_EQ(reg.Find("h1")->conn, fourth_id);
  EXPECT_EQ(reg.Gone(old_id), nullptr);
}

TEST(AgentRegistryTest, SlotsAndGpusFollowWhatItHolds) {
  AgentRegistry reg(Timing());
  const auto id = reg.Connect(std::make_shared<FakeConnection>(), kT0);
  AgentRegistry::Agent* a = *reg.Register(id, Reg("h1", 3, 4), kT0);
  reg.Hold(*a, "1/a", {0, 1});
  reg.Hold(*a, "1/b", {3});
  EXPECT_EQ(a->free_slots(), 1);
  EXPECT_EQ(a->used_gpus(), (std::set<int32_t>{0, 1, 3}));
  v1::Agent snap = a->Snapshot();
  EXPECT_EQ(snap.used_slots(), 2);
  EXPECT_EQ(snap.free_gpus(), 1);
  EXPECT_EQ(snap.running_tasks_size(), 2);
  EXPECT_TRUE(reg.Release("h1", "1/a"));
  EXPECT_FALSE(reg.Release("h1", "1/a"));
  EXPECT_FALSE(reg.Release("nobody", "1/b"));
  EXPECT_EQ(a->used_gpus(), (std::set<int32_t>{3}));
  EXPECT_EQ(a->free_slots(), 2);
}

// The roster version moves exactly when what an agent declared or whether it
// is connected can change: the core keeps its per-class agent lists until then.
TEST(AgentRegistryTest, TheRosterVersionMovesOnRegisterDisconnectAndRestoreOnly) {
  AgentRegistry reg(Timing());
  uint64_t v = reg.roster_version();
  const auto id = reg.Connect(std::make_shared<FakeConnection>(), kT0);
  EXPECT_EQ(reg.roster_version(), v) << "a stream alone registers nothing";
  EXPECT_FALSE(reg.Register(id, Reg("", 1), kT0).ok());
  EXPECT_EQ(reg.roster_version(), v) << "a refused registration changes nothing";
  AgentRegistry::Agent* a = *reg.Register(id, Reg("h1", 2), kT0);
  EXPECT_GT(reg.roster_version(), v);
  v = reg.roster_version();
  reg.Hold(*a, "1/a", {});
  EXPECT_TRUE(reg.Release("h1", "1/a"));
  reg.SetHeartbeatInterval(*a, absl::Seconds(3), absl::Seconds(10));
  EXPECT_EQ(reg.roster_version(), v) << "slots and heartbeats are not the roster";
  reg.Disconnect(*a, absl::OkStatus(), kT0);
  EXPECT_GT(reg.roster_version(), v);
  v = reg.roster_version();
  v1::Agent stored;
  stored.set_name("h2");
  reg.Restore(stored, kT0);
  EXPECT_GT(reg.roster_version(), v);
}

TEST(AgentRegistryTest, SilentAgentsAndLostTimers) {
  AgentRegistry reg(Timing());
  auto conn = std::make_shared<FakeConnection>();
  const auto id = reg.Connect(conn, kT0);
  AgentRegistry::Agent* a = *reg.Register(id, Reg("h1", 1), kT0);
  reg.Hold(*a, "1/a", {});
  EXPECT_TRUE(reg.Silent(kT0 + absl::Seconds(10)).empty());
  ASSERT_EQ(reg.Silent(kT0 + absl::Seconds(11)).size(), 1u);

  const absl::Time t1 = kT0 + absl::Seconds(11);
  reg.Disconnect(*a, absl::UnavailableError("no heartbeat"), t1);
  EXPECT_TRUE(absl::IsUnavailable(conn->closed));
  EXPECT_FALSE(a->connected());
  EXPECT_FALSE(a->accepting());
  EXPECT_EQ(a->info.state(), v1::AGENT_STATE_DISCONNECTED);
  EXPECT_EQ(reg.Gone(id), nullptr);  // already treated as gone
  EXPECT_TRUE(reg.Lost(t1 + absl::Seconds(4)).empty());
  ASSERT_EQ(reg.Lost(t1 + absl::Seconds(5)).size(), 1u);
  reg.Release("h1", "1/a");
  EXPECT_TRUE(reg.Lost(t1 + absl::Seconds(5)).empty());  // nothing left to lose
}

// The deadline is each agent's own: told a longer heartbeat interval, it may
// be silent longer; told a shorter one, it is noticed sooner. Heard from, it
// is due again from then.
TEST(AgentRegistryTest, EachAgentIsSilentPastItsOwnAllowedSilence) {
  AgentRegistry reg(Timing());
  AgentRegistry::Agent* slow = *reg.Register(reg.Connect(std::make_shared<FakeConnection>(), kT0),
                                             Reg("slow", 1), kT0);
  AgentRegistry::Agent* fast = *reg.Register(reg.Connect(std::make_shared<FakeConnection>(), kT0),
                                             Reg("fast", 1), kT0);
  AgentRegistry::Agent* plain = *reg.Register(reg.Connect(std::make_shared<FakeConnection>(), kT0),
                                              Reg("plain", 1), kT0);
  EXPECT_EQ(reg.connected(), 3u);
  EXPECT_TRUE(reg.Silent(kT0 + absl::Seconds(1)).empty());  // queued at the 10 s default
  reg.SetHeartbeatInterval(*slow, absl::Seconds(20), absl::Seconds(27));
  reg.SetHeartbeatInterval(*fast, absl::Seconds(1), absl::Seconds(4));
  EXPECT_EQ(slow->heartbeat_interval, absl::Seconds(20));

  EXPECT_EQ(reg.Silent(kT0 + absl::Seconds(5)), std::vector<AgentRegistry::Agent*>{fast});
  fast->last_seen = kT0 + absl::Seconds(5);  // it heartbeated after all
  reg.Disconnect(*plain, absl::OkStatus(), kT0 + absl::Seconds(5));
  EXPECT_EQ(reg.connected(), 2u);
  EXPECT_TRUE(reg.Silent(kT0 + absl::Seconds(9)).empty());
  EXPECT_EQ(reg.Silent(kT0 + absl::Seconds(11)), std::vector<AgentRegistry::Agent*>{fast})
      << "not slow (27 s), not plain (disconnected)";
  slow->last_seen = kT0 + absl::Seconds(20);
  EXPECT_EQ(reg.Silent(kT0 + absl::Seconds(40)), (std::vector<AgentRegistry::Agent*>{fast}));
  EXPECT_EQ(reg.Silent(kT0 + absl::Seconds(48)).size(), 2u);
}

TEST(AgentRegistryTest, RestoredAgentsWaitTheRestartGrace) {
  AgentRegistry reg(Timing());
  v1::Agent stored;
  stored.set_name("h1");
  stored.set_state(v1::AGENT_STATE_CONNECTED);
  AgentRegistry::Agent& a = reg.Restore(stored, kT0);
  EXPECT_EQ(a.info.state(), v1::AGENT_STATE_DISCONNECTED);
  reg.Hold(a, "1/a", {});
  AgentRegistry::Agent& ghost = reg.RestoreHolder("h2", kT0);  // no stored row
  reg.Hold(ghost, "1/b", {});
  EXPECT_EQ(&reg.RestoreHolder("h1", kT0), &a);
  EXPECT_TRUE(reg.Lost(kT0 + absl::Seconds(29)).empty());
  EXPECT_EQ(reg.Lost(kT0 + absl::Seconds(30)).size(), 2u);
}

TEST(AgentRegistryTest, UnregisteredStreamsCloseAtTheDeadlineAndShutdownClosesAll) {
  AgentRegistry reg(Timing());
  auto quiet = std::make_shared<FakeConnection>();
  auto good = std::make_shared<FakeConnection>();
  reg.Connect(quiet, kT0);
  ASSERT_TRUE(reg.Register(reg.Connect(good, kT0), Reg("h1", 1), kT0).ok());
  reg.CloseUnregistered(kT0 + absl::Seconds(11));
  EXPECT_TRUE(absl::IsDeadlineExceeded(quiet->closed));
  EXPECT_TRUE(good->closed.ok());
  reg.CloseAll(absl::UnavailableError("shutting down"));
  EXPECT_TRUE(absl::IsUnavailable(good->closed));
  auto late = std::make_shared<FakeConnection>();
  reg.Connect(late, kT0);
  EXPECT_TRUE(absl::IsUnavailable(late->closed));
}

}  // namespace
}  // namespace musafarm::coordinator
