#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early-return helpers for absl::Status / absl::StatusOr.
#define MF_RETURN_IF_ERROR(expr)                                \
  do {                                                          \
    if (absl::Status mf_s_ = (expr); !mf_s_.ok()) return mf_s_; \
  } while (0)

#define MF_CAT_(a, b) a##b
#define MF_CAT(a, b) MF_CAT_(a, b)
#define MF_ASSIGN_OR_RETURN(lhs, expr) MF_AOR_(MF_CAT(mf_so_, __LINE__), lhs, expr)
#define MF_AOR_(tmp, lhs, expr)       \
  auto tmp = (expr);                  \
  if (!tmp.ok()) return tmp.status(); \
  lhs = *std::move(tmp)
