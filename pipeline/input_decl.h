#pragma once

// A pipeline's declared input (issue 17): `inputs: {NAME: {path: DIR, ignore:
// FILE}}`, a source tree the submitting CLI packs and uploads with the job
// unless `--context NAME=...` replaces it. Stages name it as
// `context: input:NAME` (docs/pipeline.md, "Inputs").

#include <string>

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
  // "FILE:LINE:COL: inputs.NAME", for messages about it at submit time
  // (a path that does not exist on the submitter's machine).
  std::string where;
};

}  // namespace musafarm::pipeline
