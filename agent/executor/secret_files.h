#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "common/subprocess.h"

namespace musafarm::agent {

// A docker_run attempt's secrets as files, for read-only bind mounts at
// /run/secrets/<name lowercased>. They live in
// ROOT/musafarm-<owner>-secrets-<attempt>/ (owner: farm and agent) (directory 0700, so other users of
// the host cannot reach them; files 0444, so a container running as any user
// can read its own), on a tmpfs by default so that no value is ever written
// to a disk. The destructor removes them.
class SecretFiles {
 public:
  SecretFiles() = default;
  SecretFiles(const SecretFiles&) = delete;
  SecretFiles& operator=(const SecretFiles&) = delete;
  ~SecretFiles() { Remove(); }

  // `root` "" = DefaultRoot(). On error nothing is left behind.
  absl::Status Write(const std::string& root, const std::string& owner, uint64_t attempt_id,
                     const EnvMap& secrets);
  // Name -> file path, for every secret written.
  const std::map<std::string, std::string>& paths() const { return paths_; }
  void Remove();

  // /dev/shm when it is a writable directory, else the system's temp dir
  // (which may be a disk: hosts without /dev/shm should pass --secrets-dir).
  static std::string DefaultRoot();
  // Removes the directories an earlier run of this agent left (it was killed
  // mid-attempt); returns how many.
  static int RemoveStale(const std::string& root, const std::string& owner);
  // The owner of one agent's directories: farm, agent name and a short hash of
  // its absolute work directory. Two agents of the same name on one host (a
  // copied config, or parallel test farms) must not sweep each other's live
  // secrets at start; their work directories differ, so their owners do.
  static std::string OwnerFor(const std::string& farm, const std::string& agent,
                              const std::string& work_dir);

 private:
  std::string dir_;
  std::map<std::string, std::string> paths_;
};

}  // namespace musafarm::agent
