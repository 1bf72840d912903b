#pragma once

// A pipeline's declared input (issue 17): a source tree the job is submitted
// with unless `--context NAME=...` replaces it, one of
//   {path: DIR, ignore: FILE}   a directory the submitting CLI packs and uploads;
//   {git: URL, ref: REF}        a git repository the coordinator resolves to a
//                               commit (URL and REF may hold ${param});
//   {join: {.: A, SUB: B}}      one tree made of other inputs (the coordinator
//                               joins them: coordinator/joined_inputs.h).
// Stages name it as `context: input:NAME` (docs/pipeline.md, "Inputs").

#include <string>
#include <utility>
#include <vector>

namespace musafarm::pipeline {

struct InputDecl {
  std::string name;
  // Relative to the directory of the pipeline file (never the submitter's
  // working directory, so a file means the same from wherever it is
  // submitted); may climb with "..", never absolute.
  std::string path;
  // The ignore file, relative to the input's root, inside it; "" for none.
  // An ignore file named explicitly must exist; the default may be absent.
  std::string ignore = ".dockerignore";
  bool ignore_given = false;
  std::string git;  // the repository URL; "" unless a git input
  std::string ref;  // branch, tag or commit; "" for the remote's HEAD
  // (SUB, INPUT) in file order: "." is INPUT's top directory.
  std::vector<std::pair<std::string, std::string>> join;
  // "FILE:LINE:COL: inputs.NAME", for messages about it at submit time
  // (a path that does not exist on the submitter's machine).
  std::string where;
};

}  // namespace musafarm::pipeline
