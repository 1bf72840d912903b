#pragma once

// What a job's webhook says (issue 14, item 2), in each format a target may
// ask for. Pure: the core builds the bodies when the job ends (or first
// fails) and the outbox stores them as they are.

#include <map>
#include <optional>
#include <string>

#include "coordinator/nightly_diff.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

struct Notification {
  enum class Event { kEnded, kFirstFailure };
  Event event = Event::kEnded;
  v1::Job job;  // with its tasks
  // The last lines of each failed task's log, by task id.
  std::map<std::string, std::string> log_tails;
  // The dashboard's base URL (--dashboard-url); "": no link.
  std::string dashboard_url;
  // A schedule's run compared with its previous run (item 3).
  std::optional<NightlyDiff> diff;
};

// The request body for `format`:
//   JSON (and UNSPECIFIED): {"event", "job": {id, name, state, submitter,
//     schedule, scheduled_time, link}, "counts": {tasks by state, tests},
//     "cells": [{cell, state, tests}], "failed_tasks": [{id, cell, stage,
//     reason, log_tail}], "nightly_diff"?}
//   SLACK (and Mattermost): {"text": "..."}
//   FEISHU (Lark): {"msg_type": "text", "content": {"text": "..."}}
std::string WebhookBody(const Notification& n, v1::WebhookFormat format);

// The few lines the chat formats carry: the verdict, counts, failed tasks,
// the diff's summary and the link.
std::string NotificationText(const Notification& n);

}  // namespace musafarm::coordinator
