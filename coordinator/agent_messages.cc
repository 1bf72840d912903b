#include "coordinator/agent_messages.h"

namespace musafarm::coordinator {

v1::CoordinatorMessage CancelMessage(const std::string& task_id, uint64_t attempt,
                                     const std::string& reason) {
  v1::CoordinatorMessage msg;
  msg.mutable_cancel()->set_task_id(task_id);
  msg.mutable_cancel()->set_attempt_id(attempt);
  msg.mutable_cancel()->set_reason(reason);
  return msg;
}

v1::CoordinatorMessage AckMessage(const std::string& task_id, uint64_t attempt, uint64_t offset,
                                  bool result_stored, bool resend) {
  v1::CoordinatorMessage msg;
  v1::Ack* ack = msg.mutable_ack();
  ack->set_task_id(task_id);
  ack->set_attempt_id(attempt);
  ack->set_log_offset(offset);
  ack->set_result_stored(result_stored);
  ack->set_resend(resend);
  return msg;
}

v1::CoordinatorMessage KeepImagesMessage(const std::set<std::string>& images) {
  v1::CoordinatorMessage msg;
  msg.mutable_keep_images()->mutable_images()->Assign(images.begin(), images.end());
  return msg;
}

}  // namespace musafarm::coordinator
