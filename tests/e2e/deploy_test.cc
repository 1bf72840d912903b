// The shipped deploy files run the pipeline (issue 15, point 3): agents started
// with exactly the arguments of deploy/systemd/musafarm-agent.service and of the
// DaemonSet that Debian's `kubectl kustomize` (kustomize 2.0) renders from
// deploy/kubernetes run the fixture pipeline's docker and GPU stages against a
// private dockerd; the rendered manifests, the units and deploy/README.md state
// the same numbers.
//
// What stands in for systemd and the kubelet, and nothing else: ${VAR} in the
// unit's ExecStart becomes what systemd sets (STATE_DIRECTORY,
// CONFIGURATION_DIRECTORY: directories of this test); $(VAR) in the container's
// args becomes the container's env (NODE_NAME from the downward API); an
// argument naming a path under a volumeMount names the test directory mounted
// there; the docker socket mount is DOCKER_HOST (the private daemon's socket);
// MUSAFARM_COORDINATOR (set by the DaemonSet to the Service name, which the
// agent reads in both cases) is this farm's address; and `mthreads-gmi` on
// PATH is a fake reporting one GPU, as the MUSA driver's would.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::e2e {
namespace {

const std::string kSource = MF_SOURCE_DIR;
const std::string kScripts = kSource + "/scripts/docker";
const std::string kFixture = kSource + "/tests/fixtures/docker";
const std::string kAgentUnit = kSource + "/deploy/systemd/musafarm-agent.service";
const std::string kCoordinatorUnit = kSource + "/deploy/systemd/musafarm-coordinator.service";

// The value of `key=` in a unit file, continuation lines joined; the last one wins.
std::string UnitValue(const std::string& unit, const std::string& key) {
  std::string value;
  std::vector<std::string> lines = absl::StrSplit(ReadFile(unit), '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!absl::StartsWith(lines[i], key + "=")) continue;
    std::string v = lines[i].substr(key.size() + 1);
    while (absl::EndsWith(v, "\\") && i + 1 < lines.size()) {
      v.pop_back();
      v += " " + lines[++i];
    }
    value = v;
  }
  return value;
}

std::vector<std::string> Words(const std::string& s) {
  return absl::StrSplit(s, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

// The value of a flag given as `--flag=V` or `--flag V`.
std::string Flag(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (absl::StartsWith(args[i], flag + "=")) return args[i].substr(flag.size() + 1);
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
  }
  return "";
}

bool HasArg(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

absl::Duration ParseDurationFlag(const std::string& v) {
  absl::Duration d = absl::ZeroDuration();
  double seconds = 0;
  if (absl::SimpleAtod(v, &seconds)) return absl::Seconds(seconds);  // --kill-grace 10
  EXPECT_TRUE(absl::ParseDuration(v, &d)) << v;
  return d;
}

// The longest a stopping agent takes: drain, then kill grace, then up to 10 s
// for its results to be acknowledged (agent/agent.h, final_ack_timeout).
absl::Duration AgentStopBound(const std::vector<std::string>& args) {
  const std::string drain = Flag(args, "--drain-timeout");
  const std::string kill = Flag(args, "--kill-grace");
  EXPECT_FALSE(drain.empty()) << "no --drain-timeout: " << absl::StrJoin(args, " ");
  EXPECT_FALSE(kill.empty()) << "no --kill-grace: " << absl::StrJoin(args, " ");
  return ParseDurationFlag(drain) + ParseDurationFlag(kill) + absl::Seconds(10);
}

// Debian's kubectl (kustomize 2.0), by scripts/deploy/debian-kubectl.sh.
std::vector<YAML::Node> RenderKubernetes(const std::string& dir,
                                         const std::string& kustomization = kSource +
                                                                            "/deploy/kubernetes") {
  std::string out;
  const int rc = RunToExit({"/bin/bash", kSource + "/scripts/deploy/debian-kubectl.sh"},
                           dir + "/kubectl-path.log", &out, absl::Seconds(300));
  EXPECT_EQ(rc, 0) << out;
  const std::string kubectl(absl::StripAsciiWhitespace(out));
  std::filesystem::remove(dir + "/rendered.log");
  const int render = RunToExit({kubectl, "kustomize", kustomization},
                               dir + "/rendered.log", &out, absl::Seconds(60));
  EXPECT_EQ(render, 0) << out;
  return YAML::LoadAll(out);
}

YAML::Node FindObject(const std::vector<YAML::Node>& docs, const std::string& kind,
                      const std::string& name) {
  for (const YAML::Node& d : docs) {
    if (d["kind"].as<std::string>("") == kind && d["metadata"]["name"].as<std::string>("") == name) {
      return d;
    }
  }
  ADD_FAILURE() << "no " << kind << " " << name << " in the rendered manifests";
  return YAML::Node();
}

YAML::Node Container(const YAML::Node& workload, const std::string& name) {
  for (const YAML::Node& c : workload["spec"]["template"]["spec"]["containers"]) {
    if (c["name"].as<std::string>() == name) return c;
  }
  ADD_FAILURE() << "no container " << name;
  return YAML::Node();
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> v;
  for (const YAML::Node& n : seq) v.push_back(n.as<std::string>());
  return v;
}

// The agent's argv from the unit's ExecStart, ${VAR}s as systemd sets them.
std::vector<std::string> SystemdAgentArgs(const std::map<std::string, std::string>& env) {
  std::vector<std::string> words = Words(UnitValue(kAgentUnit, "ExecStart"));
  EXPECT_FALSE(words.empty());
  if (words.empty()) return words;
  EXPECT_EQ(words[0], "/usr/bin/musafarm-agent");
  std::vector<std::string> args(words.begin() + 1, words.end());
  for (std::string& a : args) {
    for (const auto& [k, v] : env) a = absl::StrReplaceAll(a, {{"${" + k + "}", v}});
    EXPECT_FALSE(absl::StrContains(a, "${")) << "unexpanded: " << a;
  }
  return args;
}

// The agent container's args after /usr/bin/musafarm-agent, as the kubelet
// and the container runtime would hand them over (see the file comment).
std::vector<std::string> KubernetesAgentArgs(const YAML::Node& daemonset,
                                             const std::map<std::string, std::string>& env,
                                             const std::map<std::string, std::string>& mounts) {
  const YAML::Node agent = Container(daemonset, "agent");
  std::vector<std::string> command = Strings(agent["command"]);
  EXPECT_TRUE(!command.empty() && command.back() == "/usr/bin/musafarm-agent")
      << absl::StrJoin(command, " ");
  std::vector<std::string> args = Strings(agent["args"]);
  for (std::string& a : args) {
    for (const auto& [k, v] : env) a = absl::StrReplaceAll(a, {{"$(" + k + ")", v}});
    EXPECT_FALSE(absl::StrContains(a, "$(")) << "unexpanded: " << a;
    for (const auto& [container_path, host_path] : mounts) {
      const size_t at = a.find("=" + container_path);
      if (at != std::string::npos) a = a.substr(0, at + 1) + host_path + a.substr(at + 1 + container_path.size());
      if (a == container_path) a = host_path;
    }
  }
  return args;
}

// Sets environment variables for the processes this test starts, restoring them after.
class ScopedEnv {
 public:
  void Set(const std::string& k, const std::string& v) {
    const char* old = ::getenv(k.c_str());
    saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// What `BINARY [SUBCOMMAND] --help` prints.
std::string Help(const std::string& binary, const std::string& dir) {
  std::string out;
  EXPECT_EQ(RunToExit({binary, "--help"}, dir + "/help.log", &out), 0) << out;
  return out;
}

// The `--flag` names in `args` that `help` does not list.
std::vector<std::string> UnknownFlags(const std::vector<std::string>& args,
                                      const std::string& help) {
  std::vector<std::string> unknown;
  for (const std::string& a : args) {
    if (!absl::StartsWith(a, "--")) continue;
    const std::string flag = a.substr(0, a.find('='));
    if (!std::regex_search(help, std::regex("(^|[\\s,])" + flag + "([\\s=,]|$)"))) {
      unknown.push_back(flag);
    }
  }
  return unknown;
}

// `key` of compose service `service`, or of what it merges in (`<<: *x`;
// yaml-cpp leaves merge keys to the reader).
YAML::Node ServiceField(const YAML::Node& service, const std::string& key) {
  if (service[key]) return service[key];
  const YAML::Node merged = service["<<"];
  return merged ? merged[key] : YAML::Node();
}

// The HA examples (issue 20): two coordinators on one PostgreSQL with
// --store and --advertise-address, agents given both advertised addresses,
// every flag one the binaries have, and no secret in the files.
TEST(DeployFilesTest, HaExamplesRunTwoCoordinatorsOnPostgresWithAgentsThatKnowBoth) {
  Farm farm;  // only for its directory
  const std::string coordinator_help = Help(MF_COORDINATOR_BIN, farm.dir());
  const std::string agent_help = Help(MF_AGENT_BIN, farm.dir());
  ASSERT_TRUE(absl::StrContains(coordinator_help, "--advertise-address")) << coordinator_help;

  // Compose.
  const std::string compose_file = kSource + "/deploy/compose/ha.yaml";
  const YAML::Node compose = YAML::LoadFile(compose_file);
  std::vector<std::string> advertised;
  std::vector<std::vector<std::string>> agent_lists;
  for (const auto& service : compose["services"]) {
    const std::string name = service.first.as<std::string>();
    if (!service.second["command"]) continue;
    const std::vector<std::string> command = Strings(service.second["command"]);
    ASSERT_FALSE(command.empty()) << name;
    const std::vector<std::string> args(command.begin() + 1, command.end());
    if (absl::EndsWith(command[0], "musafarm-coordinator")) {
      EXPECT_THAT(UnknownFlags(args, coordinator_help), ::testing::IsEmpty()) << name;
      const std::string store = Flag(args, "--store");
      EXPECT_TRUE(absl::StartsWith(store, "postgresql://")) << name << ": " << store;
      // No password in the URL (user@host; the password comes from the env
      // file as PGPASSWORD): nothing between "://" and "@" has a ':'.
      const size_t user = store.find("://") + 3;
      EXPECT_FALSE(absl::StrContains(store.substr(user, store.find('@') - user), ":"))
          << name << " has a password in its --store URL";
      EXPECT_EQ(ServiceField(service.second, "env_file").as<std::string>(""), "ha.env") << name;
      advertised.push_back(Flag(args, "--advertise-address"));
      EXPECT_FALSE(advertised.back().empty()) << name;
    } else if (absl::EndsWith(command[0], "musafarm-agent")) {
      EXPECT_THAT(UnknownFlags(args, agent_help), ::testing::IsEmpty()) << name;
      agent_lists.push_back(absl::StrSplit(Flag(args, "--coordinator"), ','));
    }
  }
  ASSERT_EQ(advertised.size(), 2u);
  ASSERT_EQ(agent_lists.size(), 2u);
  for (const std::vector<std::string>& list : agent_lists) {
    EXPECT_THAT(list, ::testing::UnorderedElementsAreArray(advertised));
  }
  const std::string example = ReadFile(kSource + "/deploy/compose/ha.env.example");
  for (const char* key : {"POSTGRES_PASSWORD=", "PGPASSWORD=", "MUSAFARM_SECRETS_KEY="}) {
    EXPECT_TRUE(absl::StrContains(example, key)) << key;
  }
  EXPECT_FALSE(absl::StrContains(ReadFile(compose_file), "PASSWORD=")) << "a secret in ha.yaml";

  // Kubernetes: the overlay on deploy/kubernetes.
  const std::vector<YAML::Node> docs =
      RenderKubernetes(farm.dir(), kSource + "/deploy/kubernetes-ha");
  const YAML::Node sts = FindObject(docs, "StatefulSet", "musafarm-coordinator");
  const YAML::Node ds = FindObject(docs, "DaemonSet", "musafarm-agent");
  ASSERT_TRUE(sts && ds);
  EXPECT_EQ(sts["spec"]["replicas"].as<int>(0), 2);
  const YAML::Node coordinator = Container(sts, "coordinator");
  const std::vector<std::string> cargs = Strings(coordinator["args"]);
  EXPECT_THAT(UnknownFlags(cargs, coordinator_help), ::testing::IsEmpty());
  EXPECT_EQ(Flag(cargs, "--store"), "$(MUSAFARM_STORE_URL)");
  const std::string advertise = Flag(cargs, "--advertise-address");
  EXPECT_TRUE(absl::StartsWith(advertise, "$(POD_NAME).")) << advertise;
  // Secrets come from Secrets, by reference.
  std::map<std::string, std::string> secret_of_env;
  for (const YAML::Node& e : coordinator["env"]) {
    if (e["valueFrom"]["secretKeyRef"]) {
      secret_of_env[e["name"].as<std::string>()] =
          e["valueFrom"]["secretKeyRef"]["name"].as<std::string>();
    }
    EXPECT_FALSE(e["value"] && absl::StrContains(e["name"].as<std::string>(), "PASSWORD"));
  }
  EXPECT_EQ(secret_of_env["MUSAFARM_STORE_URL"], "musafarm-store");
  EXPECT_EQ(secret_of_env["PGPASSWORD"], "musafarm-store");
  EXPECT_EQ(secret_of_env["MUSAFARM_SECRETS_KEY"], "musafarm-secrets-key");
  // One CA for the farm: no per-volume `ca init`.
  EXPECT_FALSE(sts["spec"]["template"]["spec"]["initContainers"] &&
               sts["spec"]["template"]["spec"]["initContainers"].size() > 0);
  // The agents' list is each pod's advertised address.
  std::string agent_list;
  for (const YAML::Node& e : Container(ds, "agent")["env"]) {
    if (e["name"].as<std::string>() == "MUSAFARM_COORDINATOR") agent_list = e["value"].as<std::string>();
  }
  const std::string suffix = advertise.substr(std::string("$(POD_NAME)").size());
  EXPECT_EQ(agent_list, absl::StrCat("musafarm-coordinator-0", suffix, ",musafarm-coordinator-1",
                                     suffix));
  EXPECT_THAT(UnknownFlags(Strings(Container(ds, "agent")["args"]), agent_help),
              ::testing::IsEmpty());
}

TEST(DeployFilesTest, ManifestsAndUnitsRunDockerCapableAgentsWithGpusProbesAndEnoughStopGrace) {
  Farm farm;  // only for its directory
  const std::vector<YAML::Node> docs = RenderKubernetes(farm.dir());
  ASSERT_FALSE(docs.empty());
  const YAML::Node ds = FindObject(docs, "DaemonSet", "musafarm-agent");
  const YAML::Node sts = FindObject(docs, "StatefulSet", "musafarm-coordinator");
  ASSERT_TRUE(ds && sts);
  const YAML::Node agent = Container(ds, "agent");
  const std::vector<std::string> k8s_args = Strings(agent["args"]);

  // Docker-capable, with BuildKit, and Debian's docker CLI where the agent looks for it.
  EXPECT_TRUE(HasArg(k8s_args, "--docker")) << absl::StrJoin(k8s_args, " ");
  EXPECT_TRUE(HasArg(k8s_args, "--buildkit"));
  EXPECT_EQ(Flag(k8s_args, "--docker-cli"), "") << "the agent's default is /usr/bin/docker";
  EXPECT_FALSE(HasArg(k8s_args, "--insecure")) << "TLS: agents present certificates";
  // The docker socket and the GPU device nodes are mounted from the node.
  std::map<std::string, std::string> host_path_of_volume;
  for (const YAML::Node& v : ds["spec"]["template"]["spec"]["volumes"]) {
    if (v["hostPath"]) host_path_of_volume[v["name"].as<std::string>()] = v["hostPath"]["path"].as<std::string>();
  }
  std::map<std::string, std::string> mounted;  // container path -> node path
  for (const YAML::Node& m : agent["volumeMounts"]) {
    const std::string vol = m["name"].as<std::string>();
    if (host_path_of_volume.count(vol)) mounted[m["mountPath"].as<std::string>()] = host_path_of_volume[vol];
  }
  EXPECT_EQ(mounted["/var/run/docker.sock"], "/var/run/docker.sock");
  EXPECT_EQ(mounted["/dev"], "/dev") << "the GPU device nodes (/dev/mtgpu.N, /dev/dri) are not mounted";
  EXPECT_TRUE(agent["securityContext"]["privileged"].as<bool>(false));
  // Stop grace covers drain + kill grace + the final acknowledgement wait.
  const absl::Duration k8s_bound = AgentStopBound(k8s_args);
  const int grace = ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as<int>(0);
  EXPECT_GT(absl::Seconds(grace), k8s_bound) << grace << " s <= " << k8s_bound;
  // Probes: the agent's checks the docker socket; the coordinator's use /healthz and /readyz.
  EXPECT_EQ(Strings(agent["livenessProbe"]["exec"]["command"]).at(0), "/usr/bin/docker");
  const YAML::Node coordinator = Container(sts, "coordinator");
  EXPECT_EQ(coordinator["livenessProbe"]["httpGet"]["path"].as<std::string>(""), "/healthz");
  EXPECT_EQ(coordinator["readinessProbe"]["httpGet"]["path"].as<std::string>(""), "/readyz");
  const std::vector<std::string> coordinator_args = Strings(coordinator["args"]);
  EXPECT_EQ(Flag(coordinator_args, "--http-listen"), "0.0.0.0:8080");
  EXPECT_FALSE(HasArg(coordinator_args, "--insecure"));
  // Both coordinators run with the shipped agent policy (the ConfigMap holds the file).
  EXPECT_EQ(Flag(coordinator_args, "--agent-policy"), "/etc/musafarm/agent-policy.yaml");
  EXPECT_EQ(Flag(Words(UnitValue(kCoordinatorUnit, "ExecStart")), "--agent-policy"),
            "${CONFIGURATION_DIRECTORY}/agent-policy.yaml");
  bool policy_in_configmap = false;
  for (const YAML::Node& d : docs) {
    if (d["kind"].as<std::string>("") == "ConfigMap" && d["data"]["agent-policy.yaml"]) {
      policy_in_configmap = d["data"]["agent-policy.yaml"].as<std::string>() ==
                            ReadFile(kSource + "/deploy/kubernetes/agent-policy.yaml");
    }
  }
  EXPECT_TRUE(policy_in_configmap);
  // A NetworkPolicy admits only the coordinator's two ports and lets it dial out nowhere.
  const YAML::Node policy = FindObject(docs, "NetworkPolicy", "musafarm-coordinator");
  ASSERT_TRUE(policy);
  std::set<int> ports;
  for (const YAML::Node& rule : policy["spec"]["ingress"]) {
    for (const YAML::Node& p : rule["ports"]) ports.insert(p["port"].as<int>());
  }
  EXPECT_EQ(ports, (std::set<int>{7070, 8080}));
  EXPECT_EQ(policy["spec"]["egress"].size(), 0u);
  EXPECT_TRUE(FindObject(docs, "NetworkPolicy", "musafarm-agent"));

  // The systemd agent: the same flags, and TimeoutStopSec above the same bound.
  const std::vector<std::string> unit_args =
      SystemdAgentArgs({{"CONFIGURATION_DIRECTORY", "/etc/musafarm"},
                        {"STATE_DIRECTORY", "/var/lib/musafarm-agent"}});
  EXPECT_TRUE(HasArg(unit_args, "--docker")) << absl::StrJoin(unit_args, " ");
  EXPECT_TRUE(HasArg(unit_args, "--buildkit"));
  EXPECT_FALSE(HasArg(unit_args, "--insecure"));
  const absl::Duration unit_bound = AgentStopBound(unit_args);
  const absl::Duration timeout_stop = ParseDurationFlag(UnitValue(kAgentUnit, "TimeoutStopSec"));
  EXPECT_GT(timeout_stop, unit_bound);
  EXPECT_EQ(UnitValue(kAgentUnit, "SupplementaryGroups"), "docker");
  EXPECT_EQ(UnitValue(kAgentUnit, "KillMode"), "mixed");
  EXPECT_FALSE(absl::StrContains(UnitValue(kCoordinatorUnit, "ExecStart"), "--insecure"));

  // deploy/README.md states the same numbers as the files.
  const std::string readme = ReadFile(kSource + "/deploy/README.md");
  const int timeout_s = static_cast<int>(absl::ToInt64Seconds(timeout_stop));
  for (const std::string& says :
       {absl::StrCat("TimeoutStopSec=", UnitValue(kAgentUnit, "TimeoutStopSec")),
        absl::StrCat("terminationGracePeriodSeconds: ", grace),
        absl::StrCat("--drain-timeout ", Flag(unit_args, "--drain-timeout")),
        absl::StrCat("--kill-grace ", Flag(unit_args, "--kill-grace")),
        absl::StrCat(absl::ToInt64Seconds(unit_bound), " s")}) {
    EXPECT_TRUE(absl::StrContains(readme, says)) << "deploy/README.md does not say " << says;
  }
  EXPECT_EQ(timeout_s, grace) << "the unit and the DaemonSet give a stopping agent different times";
  EXPECT_EQ(Flag(unit_args, "--drain-timeout"), Flag(k8s_args, "--drain-timeout"));

  // The compose demo's agents: Docker waits longer than they take to stop.
  const YAML::Node compose = YAML::LoadFile(kSource + "/deploy/compose/compose.yaml");
  int compose_agents = 0;
  for (const auto& service : compose["services"]) {
    const std::string name = service.first.as<std::string>();
    if (!absl::StartsWith(name, "agent")) continue;
    ++compose_agents;
    // yaml-cpp keeps `<<: *agent` as a key: look through it.
    const YAML::Node grace_node = service.second["stop_grace_period"]
                                      ? service.second["stop_grace_period"]
                                      : service.second["<<"]["stop_grace_period"];
    const absl::Duration compose_grace = ParseDurationFlag(grace_node.as<std::string>(""));
    const absl::Duration bound = AgentStopBound(Strings(service.second["command"]));
    EXPECT_GT(compose_grace, bound) << name;
  }
  EXPECT_EQ(compose_agents, 2);
  // The compose coordinator's health check asks /readyz on the HTTP port it
  // serves, as Kubernetes does (scripts/deploy/compose-check.sh sees it pass).
  const YAML::Node compose_coordinator = compose["services"]["coordinator"];
  const std::vector<std::string> health = Strings(compose_coordinator["healthcheck"]["test"]);
  EXPECT_EQ(absl::StrJoin(health, " "),
            "CMD musafarm-coordinator probe --url http://127.0.0.1:8080/readyz");
  EXPECT_EQ(Flag(Strings(compose_coordinator["command"]), "--http-listen"), "0.0.0.0:8080");
  EXPECT_EQ(Flag(unit_args, "--kill-grace"), Flag(k8s_args, "--kill-grace"));
}

class DeployedAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists("/usr/sbin/dockerd") &&
                std::filesystem::exists("/usr/bin/docker-registry") &&
                std::filesystem::exists("/usr/bin/docker"))
        << "Docker Engine not installed: run scripts/docker/install.sh";
    std::string out;
    for (int i = 0; i < 20 && registry_.empty(); ++i) {
      const int port = 20000 + (::getpid() * 11 + i * 137) % 20000;
      std::filesystem::remove(farm_.dir() + "/registry-start.log");
      if (RunToExit({kScripts + "/registry.sh", "start", farm_.dir() + "/registry",
                     absl::StrCat(port)},
                    farm_.dir() + "/registry-start.log", &out, absl::Seconds(60)) == 0) {
        registry_ = absl::StrCat("127.0.0.1:", port);
      }
    }
    ASSERT_FALSE(registry_.empty()) << out;
    dockerd_ = farm_.dir() + "/dockerd";
    ASSERT_EQ(RunToExit({kScripts + "/dockerd.sh", "start", dockerd_}, dockerd_ + ".log", &out,
                        absl::Seconds(120)),
              0)
        << out;
    host_ = std::string(absl::StripPrefix(
        absl::StripAsciiWhitespace(ReadFile(dockerd_ + "/docker-host")), "DOCKER_HOST="));
    ASSERT_EQ(RunToExit({kScripts + "/busybox-image.sh", host_, "musafarm/busybox:test"},
                        dockerd_ + "-image.log", &out, absl::Seconds(120)),
              0)
        << out;
  }
  void TearDown() override {
    std::string out;
    agents_.clear();  // SIGKILLed before their daemon goes
    if (!dockerd_.empty()) RunToExit({kScripts + "/dockerd.sh", "stop", dockerd_}, dockerd_ + "-stop.log", &out, absl::Seconds(120));
    if (!registry_.empty()) {
      RunToExit({kScripts + "/registry.sh", "stop", farm_.dir() + "/registry"},
                farm_.dir() + "/registry-stop.log", &out, absl::Seconds(60));
    }
  }

  Farm farm_{[] {
    FarmOptions o;
    o.tls = true;
    return o;
  }()};
  std::string registry_, dockerd_, host_;
  std::vector<std::unique_ptr<Process>> agents_;
};

TEST_F(DeployedAgentsTest, AgentsFromTheUnitAndTheDaemonSetRunTheFixturesDockerAndGpuStages) {
  // The shipped agent policy: with TLS, stages with secrets or privilege need it.
  farm_.StartCoordinator({"--agent-policy", kSource + "/deploy/kubernetes/agent-policy.yaml"});
  const std::vector<YAML::Node> docs = RenderKubernetes(farm_.dir());
  const YAML::Node ds = FindObject(docs, "DaemonSet", "musafarm-agent");
  ASSERT_TRUE(ds);

  // What systemd and the kubelet would give the agents on this machine.
  const std::string etc = farm_.dir() + "/etc-musafarm";
  std::filesystem::create_directories(etc);
  std::filesystem::copy_file(kSource + "/deploy/systemd/agent.yaml", etc + "/agent.yaml");
  const std::string bin = farm_.dir() + "/fake-driver-bin";
  std::filesystem::create_directories(bin);
  // Lists one GPU (-L) and answers the agent's health probe (-q -i 0, issue 16) with success.
  WriteFile(bin + "/mthreads-gmi",
            "#!/bin/sh\n[ \"$1\" = -L ] && echo 'GPU 0 : MTT S4000 (UUID : fake-0)'\nexit 0\n");
  std::filesystem::permissions(bin + "/mthreads-gmi", std::filesystem::perms::owner_all);
  ScopedEnv env;
  env.Set("MUSAFARM_COORDINATOR", farm_.address());
  env.Set("DOCKER_HOST", host_);
  env.Set("PATH", bin + ":" + std::string(::getenv("PATH")));

  farm_.GiveAgentCertificate("systemd", "agent-systemd");
  std::vector<std::string> unit = SystemdAgentArgs(
      {{"CONFIGURATION_DIRECTORY", etc}, {"STATE_DIRECTORY", farm_.agent_dir("systemd")}});
  unit.insert(unit.begin(), MF_AGENT_BIN);
  auto a = Process::Start(unit, farm_.dir() + "/agent-systemd.log");
  ASSERT_TRUE(a.ok()) << a.status();
  agents_.push_back(std::move(*a));

  farm_.GiveAgentCertificate("node-k", "node-k");
  const std::string secrets = farm_.dir() + "/k8s-secrets";
  std::filesystem::create_directories(secrets);
  std::vector<std::string> pod = KubernetesAgentArgs(
      ds, {{"NODE_NAME", "node-k"}},
      {{"/var/lib/musafarm-agent/work", farm_.agent_dir("node-k")},
       {"/run/musafarm-agent/secrets", secrets}});
  pod.insert(pod.begin(), MF_AGENT_BIN);
  auto b = Process::Start(pod, farm_.dir() + "/agent-node-k.log");
  ASSERT_TRUE(b.ok()) << b.status();
  agents_.push_back(std::move(*b));

  ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 2; }))
      << agents_[0]->Output() << agents_[1]->Output();
  for (const v1::Agent& agent : farm_.Agents()) {
    const std::string labels = absl::StrJoin(agent.labels(), ",");
    EXPECT_TRUE(absl::StrContains(labels, "gpu=mthreads")) << agent.name() << ": " << labels;
    EXPECT_TRUE(absl::StrContains(labels, "docker")) << agent.name() << ": " << labels;
  }

  // The fixture pipeline, its role labels dropped so that either agent takes any stage.
  std::string yaml = ReadFile(kFixture + "/pipeline.yaml.in");
  yaml = std::regex_replace(yaml, std::regex("\n *labels: \\[role=[a-z]+\\]"), "");
  // The fixture travels as job input `fixture`: the deployed agents fetch it
  // by digest, several stages at once on an empty cache (LocalCas's race).
  yaml = absl::StrReplaceAll(yaml, {{"@REGISTRY@", registry_}, {"@CONTEXT@", kFixture}});
  CliResult r =
      farm_.Cli({"submit", farm_.WritePipeline("fixture.yaml", yaml), "--param",
                 "failing_python=3.9", "--watch"},
                absl::Seconds(600));
  // Python 3.9's dev unit suite fails a test on request: that cell fails (as in docker_e2e_test).
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 15);
  std::set<std::string> agents_used;
  for (const v1::Task& t : job->tasks()) {
    agents_used.insert(t.agent());
    const bool failing = absl::StrContains(t.id(), "dev-3.9/test-dev");
    EXPECT_EQ(t.state(), failing ? v1::TASK_STATE_FAILED : v1::TASK_STATE_SUCCEEDED)
        << t.id() << ": " << t.reason();
    if (absl::StrContains(t.id(), "/test-")) {
      ASSERT_EQ(t.gpu_ids_size(), 1) << t.id();
      EXPECT_TRUE(absl::StrContains(farm_.Cli({"logs", t.id()}).out, "MTHREADS_VISIBLE_DEVICES=0\n"))
          << t.id();
    }
  }
  EXPECT_EQ(agents_used, (std::set<std::string>{"agent-systemd", "node-k"}));
}

}  // namespace
}  // namespace musafarm::e2e
