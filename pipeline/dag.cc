#include "pipeline/dag.h"

#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/labels.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "pipeline/cell_values.h"
#include "pipeline/gpu_arch.h"
#include "pipeline/input_uses.h"
#include "pipeline/inputs.h"
#include "pipeline/stages.h"
#include "pipeline/suites.h"

namespace musafarm::pipeline {
namespace {

// Whether `s`'s `when` matches `cell` on its axis keys; params are not looked at.
bool MatchesAxes(const Stage& s, const Cell& cell) {
  for (const Condition& c : s.when) {
    if (c.axis >= 0 && !Contains(c.values, cell.values[c.axis])) return false;
  }
  return true;
}

// Whether `s`'s `when` matches the params' effective values; axes are not looked at.
bool MatchesParams(const Stage& s, const Pipeline& p) {
  for (const Condition& c : s.when) {
    if (c.axis < 0 && !Contains(c.values, FindParam(p, c.param)->value)) return false;
  }
  return true;
}

}  // namespace

StageOrder OrderStages(const std::vector<bool>& runs, const std::vector<std::vector<Dep>>& deps) {
  const size_t num_stages = runs.size();
  StageOrder out;
  // Kahn's algorithm taking the lowest stage index first: the result is the
  // file order wherever the dependencies allow it.
  std::vector<int> waiting(num_stages, 0);
  std::vector<std::vector<size_t>> dependants(num_stages);
  std::set<size_t> ready;
  for (size_t s = 0; s < num_stages; ++s) {
    if (!runs[s]) continue;
    waiting[s] = static_cast<int>(deps[s].size());
    for (const Dep& d : deps[s]) dependants[d.stage].push_back(s);
    if (waiting[s] == 0) ready.insert(s);
  }
  std::vector<bool> done(num_stages, false);
  std::vector<size_t>& order = out.order;
  while (!ready.empty()) {
    const size_t s = *ready.begin();
    ready.erase(ready.begin());
    done[s] = true;
    order.push_back(s);
    for (size_t t : dependants[s]) {
      if (--waiting[t] == 0) ready.insert(t);
    }
  }
  size_t running = 0;
  for (size_t s = 0; s < num_stages; ++s) running += runs[s] ? 1 : 0;
  if (order.size() != running) {
    // Every stage left waits on another one left, so following the first
    // such dependency from any of them must come back round: a cycle.
    size_t start = 0;
    while (!runs[start] || done[start]) ++start;
    std::vector<size_t> path;
    std::vector<int> seen_at(num_stages, -1);
    size_t at = start;
    while (seen_at[at] < 0) {
      seen_at[at] = static_cast<int>(path.size());
      path.push_back(at);
      for (const Dep& d : deps[at]) {
        if (!done[d.stage]) {
          at = d.stage;
          break;
        }
      }
    }
    std::vector<size_t> cycle(path.begin() + seen_at[at], path.end());
    // Name the cycle from its first stage in the file, so the message does
    // not depend on where the search happened to enter it.
    size_t first = 0;
    for (size_t i = 1; i < cycle.size(); ++i) {
      if (cycle[i] < cycle[first]) first = i;
    }
    for (size_t i = 0; i < cycle.size(); ++i)
      out.cycle.push_back(cycle[(first + i) % cycle.size()]);
  }
  return out;
}

absl::StatusOr<v1::Job> BuildJob(const Substituter& sub, const Pipeline& p,
                                 absl::string_view job_id, absl::string_view name,
                                 const std::vector<std::string>& replaced,
                                 std::vector<InputUse>* uses) {
  std::vector<InputUse> ignored;
  if (uses == nullptr) uses = &ignored;
  const YamlReader& r = sub.reader();
  const size_t num_stages = p.stages.size();
  std::vector<std::vector<bool>> runs(num_stages, std::vector<bool>(p.cells.size(), false));
  int64_t total = 0;
  for (size_t s = 0; s < num_stages; ++s) {
    const Stage& st = p.stages[s];
    // A `when` whose axis values match none of the file's cells is a mistake
    // in the file. Params and --axis may leave a stage out everywhere: fine.
    bool any = false;
    for (const Cell& cell : p.file_cells) any = any || MatchesAxes(st, cell);
    if (!any) {
      return r.Error(
          st.has_when ? st.when_mark : st.mark, Child(st.field, "when"),
          absl::StrCat("stage '", st.name, "' runs in no matrix cell: check its 'when'"));
    }
    const bool params_match = MatchesParams(st, p);
    for (size_t c = 0; c < p.cells.size(); ++c) {
      runs[s][c] = params_match && MatchesAxes(st, p.cells[c]);
      total += runs[s][c] ? 1 : 0;
    }
  }
  if (total == 0) {
    std::vector<std::string> params;
    for (const Param& param : p.params)
      params.push_back(absl::StrCat(param.name, "=", param.value));
    return r.Error(
        p.stages_mark, "stages",
        absl::StrCat(
            "no stage runs: every stage's 'when' excludes every cell",
            params.empty() ? "" : absl::StrCat(" with params ", absl::StrJoin(params, ", ")),
            WithAxisOptions(p)));
  }
  if (total > kMaxTasks) {
    return r.Error(p.stages_mark, "stages",
                   absl::StrCat("the pipeline expands to ", total, " tasks; at most ", kMaxTasks,
                                " are allowed"));
  }
  std::vector<std::string> stage_names;
  for (const Stage& s : p.stages) stage_names.push_back(s.name);

  v1::Job job;
  job.set_id(std::string(job_id));
  job.set_name(std::string(name));
  job.set_pipeline_file(r.file());
  job.set_retention_seconds(p.retention_seconds);
  for (const Axis& a : p.axes) job.add_axes(a.name);
  for (const Param& param : p.params) (*job.mutable_params())[param.name] = param.value;
  for (const CellValue& v : p.cell_params) (*job.mutable_params())[v.key] = v.value;
  for (const std::string& secret : p.given_secrets) job.add_secrets(secret);

  for (size_t c = 0; c < p.cells.size(); ++c) {
    const Cell& cell = p.cells[c];
    std::vector<Var> vars;
    for (size_t a = 0; a < p.axes.size(); ++a) vars.push_back({p.axes[a].name, cell.values[a]});
    vars.insert(vars.end(), cell.extras.begin(), cell.extras.end());
    const std::string where = p.axes.empty() ? "" : absl::StrCat(" in cell ", CellDesc(cell));
    for (const Param& param : p.params) {
      // A per-cell value where the submitter gave one (cell_values.h).
      MF_ASSIGN_OR_RETURN(std::string value, CellParamValue(r, p, cell, param, where));
      vars.push_back({param.name, std::move(value), true});
    }
    const std::string cell_id = absl::StrJoin(cell.values, "-");
    auto task_id = [&](const std::string& stage) {
      return p.axes.empty() ? absl::StrCat(job_id, "/", stage)
                            : absl::StrCat(job_id, "/", cell_id, "/", stage);
    };

    std::vector<bool> runs_in_cell(num_stages);
    for (size_t s = 0; s < num_stages; ++s) runs_in_cell[s] = runs[s][c];
    std::vector<v1::Task> tasks(num_stages);
    std::vector<std::vector<Dep>> deps(num_stages);
    for (size_t s = 0; s < num_stages; ++s) {
      if (!runs[s][c]) continue;
      const Stage& st = p.stages[s];
      v1::Task& task = tasks[s];
      task.set_id(task_id(st.name));
      task.set_job_id(std::string(job_id));
      task.set_state(v1::TASK_STATE_PENDING);
      v1::TaskSpec& spec = *task.mutable_spec();
      spec.set_stage(st.name);
      spec.set_display_name(p.axes.empty() ? st.name : absl::StrCat(st.name, " ", CellDesc(cell)));
      for (size_t a = 0; a < p.axes.size(); ++a) {
        v1::MatrixValue& mv = *spec.add_cell();
        mv.set_axis(p.axes[a].name);
        mv.set_value(cell.values[a]);
      }

      for (size_t n = 0; n < st.needs.size(); ++n) {
        const Text& need = st.needs[n].stage;
        MF_ASSIGN_OR_RETURN(std::string dep_name, sub.Substitute(need, vars, where));
        const bool substituted = need.value.find("${") != std::string::npos;
        const std::string from =
            substituted ? absl::StrCat(" (from '", need.value, "'", where, ")") : "";
        size_t d = 0;
        while (d < num_stages && p.stages[d].name != dep_name) ++d;
        if (d == num_stages) {
          return r.Error(need.mark, need.field,
                         absl::StrCat("unknown stage '", dep_name, "'", from,
                                      " (stages are: ", absl::StrJoin(stage_names, ", "), ")"));
        }
        if (d == s) {
          return r.Error(need.mark, need.field,
                         absl::StrCat("stage '", st.name, "' needs itself", from));
        }
        if (!runs[d][c]) {
          if (st.needs[n].optional) continue;  // what optional is for
          const std::string example = p.axes.empty() ? "variant" : p.axes[0].name;
          return r.Error(
              need.mark, need.field,
              absl::StrCat("stage '", dep_name, "' does not run in cell ", CellDesc(cell),
                           " (its 'when' excludes it); give stage '", st.name,
                           "' a 'when' that excludes this cell too, pick the stage per "
                           "cell with a variable, e.g. needs: [\"${",
                           example, "}\"], or make the need optional: {stage: ", dep_name,
                           ", optional: true}"));
        }
        bool dup = false;
        for (const Dep& have : deps[s]) dup = dup || have.stage == d;
        if (dup) continue;  // harmless: the task needs it once
        deps[s].push_back({d, n, substituted});
        spec.add_needs(task_id(dep_name));
      }

      v1::StageSpec& run = *spec.mutable_run();
      MF_RETURN_IF_ERROR(ExpandStageRun(sub, st, vars, where, &run));
      if (run.has_docker_build() && !run.docker_build().context_input().empty()) {
        MF_RETURN_IF_ERROR(CheckInputReference(r, p, st.docker_build.context,
                                               run.docker_build().context_input(), where));
        if (!p.inputs.empty()) {
          // The tree of this cell's own ref where its params differ.
          MF_ASSIGN_OR_RETURN(std::string use, UseInput(r, p, cell,
                                                        run.docker_build().context_input(),
                                                        where, replaced, uses));
          run.mutable_docker_build()->set_context_input(std::move(use));
        }
      }
      MF_RETURN_IF_ERROR(ExpandSuites(sub, st, vars, where, &run));
      for (const std::vector<EnvVar>* env : {&p.env, &st.env}) {
        for (const EnvVar& e : *env) {  // stage env is second, so it overrides per key
          MF_ASSIGN_OR_RETURN(std::string value, sub.Substitute(e.value, vars, where));
          (*run.mutable_env())[e.name] = std::move(value);
        }
      }
      run.set_timeout_seconds(st.timeout_seconds);
      run.set_retries(st.retries);
      for (const std::string& secret : st.secrets) {
        run.add_secrets(secret);
        if (auto forms = p.secret_forms.find(secret); forms != p.secret_forms.end()) {
          for (const std::string& form : forms->second) {
            (*run.mutable_secret_forms())[secret].add_forms(form);
          }
        }
      }
      MF_RETURN_IF_ERROR(SetSecretSources(r, p, cell, where, &run));
      if (st.has_gpus) {
        MF_ASSIGN_OR_RETURN(std::string text, sub.Substitute(st.gpus, vars, where));
        int32_t gpus = 0;
        if (!ParseGpuCount(text, &gpus)) return sub.Invalid(st.gpus, where, GpuCountError(text));
        if (gpus > p.max_gpus_per_stage) {
          return sub.Invalid(
              st.gpus, where,
              absl::StrCat(gpus, " GPUs is more than a stage may ask for (at most ",
                           p.max_gpus_per_stage,
                           p.max_gpus_per_stage >= limits::kMaxAgentGpus
                               ? ", what an agent may declare)"
                               : "; the coordinator's --max-gpus-per-stage)"));
        }
        run.set_gpus(gpus);
      }
      for (const Text& label : st.labels) {
        MF_ASSIGN_OR_RETURN(std::string value, sub.Substitute(label, vars, where));
        if (absl::Status valid = ValidateLabel(value); !valid.ok()) {
          return r.Error(label.mark, label.field, valid.message());
        }
        run.add_labels(std::move(value));
      }
      MF_RETURN_IF_ERROR(ExpandGpuArch(sub, st, vars, where, &run));
    }

    const StageOrder ordered = OrderStages(runs_in_cell, deps);
    if (!ordered.cycle.empty()) {
      const std::vector<size_t>& cycle = ordered.cycle;
      std::vector<std::string> names;
      bool substituted = false;
      const Text* blame = nullptr;
      for (size_t i = 0; i < cycle.size(); ++i) {
        const size_t s = cycle[i];
        const size_t next = cycle[(i + 1) % cycle.size()];
        names.push_back(p.stages[s].name);
        for (const Dep& d : deps[s]) {
          if (d.stage != next) continue;
          substituted = substituted || d.substituted;
          if (blame == nullptr) blame = &p.stages[s].needs[d.item].stage;
        }
      }
      names.push_back(p.stages[cycle[0]].name);
      return r.Error(blame->mark, blame->field,
                     absl::StrCat("dependency cycle: ", absl::StrJoin(names, " -> "),
                                  substituted ? where : ""));
    }
    for (size_t s : ordered.order) *job.add_tasks() = std::move(tasks[s]);
  }
  return job;
}

}  // namespace musafarm::pipeline
