#pragma once

// Shared by the store conformance suite and the SQLite backend's own tests:
// fixtures with every field set, and proto comparisons that report the diff.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "coordinator/store.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator::store_testing {

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "store_test.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// OpenSqliteStore(path), failing the test (and returning null) when it fails.
std::unique_ptr<Store> OpenSqliteOrFail(const std::string& path);

::testing::AssertionResult ProtoEq(const google::protobuf::Message& want,
                                   const google::protobuf::Message& got);

// Gives every unset scalar field of `m`, recursively, a non-default value, and
// every empty repeated scalar one element. The fixtures below set their fields
// by hand for readable values; this covers fields added to the protos later, so
// that the round trips still check every field.
void FillUnsetScalars(google::protobuf::Message* m);

// Fails unless every field of `m`, recursively, holds a non-default value (one
// member per oneof). A round trip of such a message checks every field, and a
// field added to the proto later fails here until the fixture sets it.
void ExpectAllFieldsSet(const google::protobuf::Message& m, const std::string& where);

v1::Task MakeTask(const std::string& job_id, const std::string& name,
                  v1::TaskState state = v1::TASK_STATE_PENDING);
v1::Job MakeJob(const std::string& id);
// A task with every field set.
v1::Task FullTask(const std::string& job_id, const std::string& cell, const std::string& stage,
                  int n);
// An agent with every field set.
v1::Agent FullAgent(const std::string& name, int slots);
std::vector<std::string> TaskIds(const v1::Job& job);

}  // namespace musafarm::coordinator::store_testing
