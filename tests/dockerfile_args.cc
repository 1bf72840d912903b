#include "tests/dockerfile_args.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace musafarm::tests {
namespace {

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

struct Ref {
  std::string name;
  bool has_default;
};

// Reference scanner. Quoting follows the shell (Docker's own word expansion follows
// it too): nothing in '...' is expanded, an escaped `$` is literal, "..." and $(...)
// nest. Frames of the quoting/nesting stack:
enum class FrameKind { kTop, kDouble, kCmd, kBrace };
struct Frame {
  FrameKind kind;
  int depth;         // kCmd: open parentheses
  bool conditional;  // inside the word of a ${X+...} form
  bool in_double;    // kBrace: the ${ was inside "..."
};

class RefScanner {
 public:
  RefScanner(absl::string_view s, char escape) : s_(s), escape_(escape) {}

  std::vector<Ref> Scan() {
    stack_.push_back({FrameKind::kTop, 0, false, false});
    size_t i = 0;
    while (i < s_.size()) {
      const Frame f = stack_.back();
      const char c = s_[i];
      if (c == escape_) {
        i += 2;
        continue;
      }
      if (c == '$') {
        i = Dollar(i);
        continue;
      }
      if (f.kind == FrameKind::kDouble) {
        if (c == '"') stack_.pop_back();
        ++i;
        continue;
      }
      if (c == '\'' && !(f.kind == FrameKind::kBrace && f.in_double)) {
        size_t end = s_.find('\'', i + 1);
        i = end == absl::string_view::npos ? s_.size() : end + 1;
        continue;
      }
      if (c == '"') {
        stack_.push_back({FrameKind::kDouble, 0, f.conditional, true});
      } else if (f.kind == FrameKind::kCmd) {
        if (c == '(') {
          ++stack_.back().depth;
        } else if (c == ')' && --stack_.back().depth == 0) {
          stack_.pop_back();
        }
      } else if (f.kind == FrameKind::kBrace && c == '}') {
        stack_.pop_back();
      }
      ++i;
    }
    return std::move(refs_);
  }

 private:
  // `s_[i]` is '$'; returns where scanning goes on.
  size_t Dollar(size_t i) {
    const Frame f = stack_.back();
    const bool in_double = f.kind == FrameKind::kDouble || f.in_double;
    const size_t n = s_.size();
    size_t j = i + 1;
    if (j >= n) return j;
    const char d = s_[j];
    if (d == '{') {
      size_t k = j + 1;
      // ${#N} (length) and ${!N} (indirection) still read N.
      if (k + 1 < n && (s_[k] == '#' || s_[k] == '!') && IsNameStart(s_[k + 1])) ++k;
      if (k < n && IsNameStart(s_[k])) {
        size_t start = k;
        while (k < n && IsNameChar(s_[k])) ++k;
        size_t op = k;
        if (op < n && s_[op] == ':') ++op;
        const bool dflt = op < n && (s_[op] == '-' || s_[op] == '=');
        const bool alt = op < n && s_[op] == '+';
        refs_.push_back({std::string(s_.substr(start, k - start)), f.conditional || dflt || alt});
        if (k < n && s_[k] == '}') return k + 1;
        // The rest up to the matching '}' is a word (or a pattern): scan it too.
        stack_.push_back({FrameKind::kBrace, 0, f.conditional || alt, in_double});
        return dflt || alt ? op + 1 : k;
      }
      stack_.push_back({FrameKind::kBrace, 0, f.conditional, in_double});  // ${1}, ${@}
      return k;
    }
    if (d == '(') {  // $(...) and $((...)): quoting starts afresh inside
      stack_.push_back({FrameKind::kCmd, 1, f.conditional, false});
      return j + 1;
    }
    if (IsNameStart(d)) {
      size_t k = j;
      while (k < n && IsNameChar(s_[k])) ++k;
      refs_.push_back({std::string(s_.substr(j, k - j)), f.conditional});
      return k;
    }
    if (d == '$') return j + 1;  // $$: the shell's pid
    return j;                    // $1, $@, $?, $*, a lone $
  }

  absl::string_view s_;
  char escape_;
  std::vector<Frame> stack_;
  std::vector<Ref> refs_;
};

// Splits at whitespace outside quotes; quotes and escapes stay in the words.
std::vector<std::string> SplitWords(absl::string_view s, char escape) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote == 0 && std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    cur += c;
    if (c == escape && quote != '\'' && i + 1 < s.size()) {
      cur += s[++i];
    } else if (quote == 0 && (c == '"' || c == '\'')) {
      quote = c;
    } else if (c == quote) {
      quote = 0;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::string Unquote(absl::string_view v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return std::string(v);
}

const std::set<std::string>& KnownInstructions() {
  static const auto* const kSet =
      new std::set<std::string>{"ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
                                "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
                                "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};
  return *kSet;
}

// Instructions whose variables Docker expands itself (FROM, ARG, ENV handled apart).
bool DockerExpands(absl::string_view instr) {
  return instr == "ADD" || instr == "COPY" || instr == "EXPOSE" || instr == "LABEL" ||
         instr == "STOPSIGNAL" || instr == "USER" || instr == "VOLUME" || instr == "WORKDIR";
}

bool IsPlatformArg(absl::string_view name) {
  static const auto* const kSet = new std::set<std::string, std::less<>>{
      "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
      "BUILDPLATFORM",  "BUILDOS",  "BUILDARCH",  "BUILDVARIANT"};
  return kSet->count(name) > 0;
}

bool IsProxyArg(absl::string_view name) {
  static const auto* const kSet = new std::set<std::string, std::less<>>{
      "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
      "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};
  return kSet->count(name) > 0;
}

// Splits the text into lines without their line ends.
std::vector<absl::string_view> Lines(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (absl::string_view& l : lines) absl::ConsumeSuffix(&l, "\r");
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

bool IsCommentOrBlank(absl::string_view line) {
  absl::string_view t = absl::StripLeadingAsciiWhitespace(line);
  return t.empty() || t[0] == '#';
}

// Reads `# escape=X` among the leading parser directives; returns the escape char.
char ReadEscapeDirective(const std::vector<absl::string_view>& lines) {
  char escape = '\\';
  for (absl::string_view line : lines) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&t, "#")) break;
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(t, absl::MaxSplits('=', 1));
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(kv.first));
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key.empty() || !std::all_of(key.begin(), key.end(), IsNameChar) ||
        t.find('=') == absl::string_view::npos) {
      break;  // an ordinary comment ends the directives
    }
    if (key == "escape" && value.size() == 1) escape = value[0];
  }
  return escape;
}

class Parser {
 public:
  explicit Parser(absl::string_view text) : lines_(Lines(text)) {}

  absl::StatusOr<DockerfileArgs> Parse() {
    escape_ = ReadEscapeDirective(lines_);
    size_t i = 0;
    while (i < lines_.size()) {
      if (IsCommentOrBlank(lines_[i])) {
        ++i;
        continue;
      }
      const int line_no = static_cast<int>(i) + 1;
      std::string logical;
      while (i < lines_.size()) {
        absl::string_view l = lines_[i++];
        absl::string_view r = absl::StripTrailingAsciiWhitespace(l);
        if (r.empty() || r.back() != escape_) {
          logical.append(l.data(), l.size());
          break;
        }
        logical.append(r.data(), r.size() - 1);
        // Comment and blank lines inside a continued instruction are dropped.
        while (i < lines_.size() && IsCommentOrBlank(lines_[i])) ++i;
      }
      MF_RETURN_IF_ERROR(Instruction(logical, line_no));
    }
    return std::move(out_);
  }

 private:
  absl::Status Error(int line, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
  }

  void AddRefs(absl::string_view text, absl::string_view instr, int line, char escape,
               std::vector<VarRef>* to) {
    for (Ref& r : RefScanner(text, escape).Scan()) {
      to->push_back({std::move(r.name), std::string(instr), line, ++seq_, r.has_default});
    }
  }

  absl::Status Instruction(absl::string_view logical, int line) {
    absl::string_view t = absl::StripLeadingAsciiWhitespace(logical);
    size_t sp = 0;
    while (sp < t.size() && !std::isspace(static_cast<unsigned char>(t[sp]))) ++sp;
    const std::string instr = absl::AsciiStrToUpper(t.substr(0, sp));
    const absl::string_view rest = absl::StripAsciiWhitespace(t.substr(sp));
    if (KnownInstructions().count(instr) == 0) {
      return Error(line, absl::StrCat("unknown instruction '", t.substr(0, sp), "'"));
    }
    DockerfileStage* stage = out_.stages.empty() ? nullptr : &out_.stages.back();
    if (instr == "FROM") return From(rest, line);
    if (instr == "ARG") {
      std::vector<std::string> words = SplitWords(rest, escape_);
      if (words.empty()) return Error(line, "ARG needs a name");
      for (const std::string& w : words) {
        size_t eq = w.find('=');
        ArgDecl d;
        d.name = w.substr(0, eq);
        d.line = line;
        if (eq != std::string::npos) {
          d.has_default = true;
          d.value = Unquote(absl::string_view(w).substr(eq + 1));
          AddRefs(absl::string_view(w).substr(eq + 1), "ARG", line, escape_,
                  stage ? &stage->refs : &out_.global_refs);
        }
        if (d.name.empty()) return Error(line, absl::StrCat("ARG without a name: '", w, "'"));
        d.seq = ++seq_;
        (stage ? stage->args : out_.global_args).push_back(std::move(d));
      }
      return absl::OkStatus();
    }
    if (stage == nullptr) {
      return Error(line, absl::StrCat(instr, " before the first FROM (only ARG may come first)"));
    }
    if (instr == "ENV") {
      std::vector<std::string> words = SplitWords(rest, escape_);
      if (words.empty()) return Error(line, "ENV needs a name");
      std::vector<std::string> names;
      if (words[0].find('=') == std::string::npos) {  // legacy `ENV NAME value...`
        names.push_back(words[0]);
        AddRefs(rest.substr(std::min(rest.size(), words[0].size())), instr, line, escape_,
                &stage->refs);
      } else {
        for (const std::string& w : words) {
          size_t eq = w.find('=');
          if (eq == std::string::npos) {
            return Error(line, absl::StrCat("ENV: '", w, "' is not NAME=value"));
          }
          names.push_back(w.substr(0, eq));
          AddRefs(absl::string_view(w).substr(eq + 1), instr, line, escape_, &stage->refs);
        }
      }
      // The values see the variables as they were before this instruction.
      for (std::string& n : names) stage->envs.push_back({std::move(n), line, ++seq_});
      return absl::OkStatus();
    }
    if (instr == "RUN") {
      AddRefs(rest, instr, line, '\\', &stage->refs);  // the shell's escape, whatever Docker's
    } else if (DockerExpands(instr)) {
      AddRefs(rest, instr, line, escape_, &stage->refs);
    }
    return absl::OkStatus();
  }

  absl::Status From(absl::string_view rest, int line) {
    std::vector<std::string> words = SplitWords(rest, escape_);
    size_t k = 0;
    while (k < words.size() && absl::StartsWith(words[k], "--")) ++k;
    if (k >= words.size()) return Error(line, "FROM needs an image");
    DockerfileStage st;
    st.from = words[k];
    st.line = line;
    if (k + 2 < words.size() && absl::AsciiStrToLower(words[k + 1]) == "as") {
      st.name = absl::AsciiStrToLower(words[k + 2]);
    }
    if (st.from.find('$') == std::string::npos) st.parent = out_.FindStage(st.from);
    AddRefs(rest, "FROM", line, escape_, &st.refs);
    out_.stages.push_back(std::move(st));
    return absl::OkStatus();
  }

  std::vector<absl::string_view> lines_;
  char escape_ = '\\';
  int seq_ = 0;
  DockerfileArgs out_;
};

std::string StageLabel(const DockerfileArgs& df, int i) {
  const DockerfileStage& st = df.stages[i];
  if (!st.name.empty()) return absl::StrCat("stage ", st.name);
  return absl::StrCat("stage ", i, " (FROM ", st.from, ")");
}

// Appends `p` unless `out` has it already.
void Add(std::vector<std::string>* out, std::set<std::string>* seen, std::string p) {
  if (seen->insert(p).second) out->push_back(std::move(p));
}

}  // namespace

const ArgDecl* DockerfileArgs::FindGlobal(absl::string_view name) const {
  for (const ArgDecl& d : global_args) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

bool DockerfileArgs::Declares(absl::string_view name) const {
  if (FindGlobal(name) != nullptr) return true;
  for (const DockerfileStage& st : stages) {
    for (const ArgDecl& d : st.args) {
      if (d.name == name) return true;
    }
  }
  return false;
}

int DockerfileArgs::FindStage(absl::string_view name) const {
  const std::string lower = absl::AsciiStrToLower(name);
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i].name.empty() && stages[i].name == lower) return static_cast<int>(i);
  }
  return -1;
}

std::set<std::string> DockerfileArgs::StageEnv(int index) const {
  std::set<std::string> env;
  for (int i = index; i >= 0 && i < static_cast<int>(stages.size()); i = stages[i].parent) {
    for (const EnvDef& e : stages[i].envs) env.insert(e.name);
  }
  return env;
}

absl::StatusOr<DockerfileArgs> ParseDockerfileArgs(absl::string_view text) {
  return Parser(text).Parse();
}

bool IsPredefinedArg(absl::string_view name) { return IsProxyArg(name) || IsPlatformArg(name); }

std::vector<std::string> CheckPassedArgs(const DockerfileArgs& df, const ArgCheckOptions& opt) {
  std::vector<std::string> out;
  for (const std::string& name : opt.passed) {
    if (IsPredefinedArg(name) || df.Declares(name)) continue;
    out.push_back(
        absl::StrCat(opt.who, " passes ", name, " but ", opt.dockerfile, " declares no such ARG"));
  }
  return out;
}

std::vector<std::string> CheckArgUses(const DockerfileArgs& df, const ArgCheckOptions& opt) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto at = [&](int line) { return absl::StrCat(opt.dockerfile, ":", line, ": "); };
  auto passed = [&](const std::string& n) { return opt.passed.count(n) > 0; };

  // Global scope: FROM lines and the defaults of global ARGs see the global ARGs
  // declared before them (and the platform args).
  auto check_global_use = [&](const VarRef& r, absl::string_view what) {
    const ArgDecl* g = nullptr;
    for (const ArgDecl& d : df.global_args) {
      if (d.name == r.name && d.seq < r.seq) g = &d;
    }
    if (g == nullptr) {
      if (IsPlatformArg(r.name) || IsProxyArg(r.name)) return;
      std::string hint;
      if (df.Declares(r.name)) hint = " (an ARG declared in a stage is not visible there)";
      Add(&out, &seen,
          absl::StrCat(at(r.line), what, " uses ${", r.name, "} but no ARG ", r.name,
                       " is declared before the first FROM", hint));
    } else if (!g->has_default && !passed(r.name) && !r.has_default) {
      Add(&out, &seen,
          absl::StrCat(at(r.line), what, " uses ${", r.name, "} but global ARG ", r.name, " (line ",
                       g->line, ") has no default value and ", opt.who, " does not pass it"));
    }
  };
  for (const VarRef& r : df.global_refs) check_global_use(r, "the default of a global ARG");

  for (int si = 0; si < static_cast<int>(df.stages.size()); ++si) {
    const DockerfileStage& st = df.stages[si];
    const std::string label = StageLabel(df, si);

    // Declarations: each needs a value, its own, the global default, or passed.
    std::set<std::string> reported;
    for (const ArgDecl& d : st.args) {
      if (d.has_default || passed(d.name) || IsPredefinedArg(d.name)) continue;
      const ArgDecl* g = df.FindGlobal(d.name);
      if (g != nullptr && g->has_default) continue;
      if (!reported.insert(d.name).second) continue;
      Add(&out, &seen,
          absl::StrCat(at(d.line), "ARG ", d.name, " in ", label, " has no default value",
                       g != nullptr ? " (nor has the global ARG)" : "", " and ", opt.who,
                       " does not pass it"));
    }

    // Variables the stage has as ENV without a reference's position: those of the
    // stages it is built FROM, and of the image at the root.
    std::set<std::string> inherited = {"PATH"};
    int root = si;
    for (int p = st.parent; p >= 0; p = df.stages[p].parent) {
      for (const EnvDef& e : df.stages[p].envs) inherited.insert(e.name);
      root = p;
    }
    if (absl::AsciiStrToLower(df.stages[root].from) != "scratch") {
      inherited.insert(opt.base_image_env.begin(), opt.base_image_env.end());
    }

    for (const VarRef& r : st.refs) {
      if (r.instruction == "FROM") {
        check_global_use(r, "FROM");
        continue;
      }
      if (IsProxyArg(r.name)) continue;
      bool env = inherited.count(r.name) > 0;
      for (const EnvDef& e : st.envs) env = env || (e.name == r.name && e.seq < r.seq);
      if (env) continue;
      const ArgDecl* before = nullptr;
      const ArgDecl* after = nullptr;
      for (const ArgDecl& d : st.args) {
        if (d.name != r.name) continue;
        if (d.seq < r.seq && before == nullptr) before = &d;
        if (d.seq > r.seq && after == nullptr) after = &d;
      }
      if (before != nullptr) continue;  // in scope; its value is checked at the declaration
      const bool arg_name = df.Declares(r.name) || passed(r.name);
      const bool shell = r.instruction == "RUN";
      if (shell && !arg_name) continue;          // the shell's own variable
      if (!arg_name && r.has_default) continue;  // ${LD_LIBRARY_PATH:+...} in ENV
      const std::string use =
          absl::StrCat(at(r.line), label, " uses ${", r.name, "} in ", r.instruction);
      const ArgDecl* g = df.FindGlobal(r.name);
      if (after != nullptr) {
        Add(&out, &seen, absl::StrCat(use, " before its `ARG ", r.name, "` on line ", after->line));
      } else if (g != nullptr) {
        Add(&out, &seen,
            absl::StrCat(use, " but ARG ", r.name, " is declared only before the first FROM (line ",
                         g->line, "): the stage must re-declare it (`ARG ", r.name, "`)"));
      } else {
        Add(&out, &seen,
            absl::StrCat(use, " but the stage declares no ARG ", r.name,
                         shell ? "" : " and sets no such ENV",
                         passed(r.name) ? absl::StrCat(" (", opt.who, " passes it)") : ""));
      }
    }
  }
  return out;
}

std::vector<std::string> CheckBuildArgs(const v1::Job& job,
                                        const ResolveContextFn& resolve_context) {
  std::vector<std::string> out;
  std::set<std::string> seen;

  struct Built {
    const v1::Task* task;
    std::string dockerfile;                    // as the pipeline names it
    std::shared_ptr<const DockerfileArgs> df;  // null when unreadable
  };
  std::vector<Built> builds;
  std::map<std::string, std::shared_ptr<const DockerfileArgs>> by_path;

  for (const v1::Task& task : job.tasks()) {
    if (!task.spec().run().has_docker_build()) continue;
    const v1::DockerBuildStage& b = task.spec().run().docker_build();
    const std::string who = absl::StrCat("pipeline stage ", task.spec().stage());
    Built built{&task, b.dockerfile().empty() ? "Dockerfile" : b.dockerfile(), nullptr};
    std::string path = built.dockerfile;
    if (!absl::StartsWith(path, "/")) {
      // A job input's tree (issue 17) as "input:NAME", as the pipeline names it.
      const std::string context =
          b.context_input().empty() ? b.context() : absl::StrCat("input:", b.context_input());
      absl::StatusOr<std::string> dir = resolve_context(context);
      if (!dir.ok()) {
        Add(&out, &seen,
            absl::StrCat(who, ": cannot resolve context ", context, ": ",
                         dir.status().ToString()));
        builds.push_back(std::move(built));
        continue;
      }
      path = absl::StrCat(*dir, "/", path);
    }
    auto cached = by_path.find(path);
    if (cached != by_path.end()) {
      built.df = cached->second;
    } else {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in) {
        Add(&out, &seen, absl::StrCat(who, ": cannot read ", built.dockerfile, " (", path, ")"));
      } else {
        absl::StatusOr<DockerfileArgs> df = ParseDockerfileArgs(text.str());
        if (!df.ok()) {
          Add(&out, &seen, absl::StrCat(who, ": ", built.dockerfile, ": ", df.status().message()));
        } else {
          built.df = std::make_shared<const DockerfileArgs>(*std::move(df));
        }
      }
      by_path[path] = built.df;
    }
    builds.push_back(std::move(built));
  }

  // The ENV names of the image each tag is built into.
  std::map<std::string, std::set<std::string>> tag_env;
  for (const Built& b : builds) {
    if (b.df == nullptr || b.df->stages.empty()) continue;
    const v1::DockerBuildStage& s = b.task->spec().run().docker_build();
    int target = s.target().empty() ? static_cast<int>(b.df->stages.size()) - 1
                                    : b.df->FindStage(s.target());
    if (target < 0) {
      Add(&out, &seen,
          absl::StrCat("pipeline stage ", b.task->spec().stage(), ": target ", s.target(),
                       " is no stage of ", b.dockerfile));
      continue;
    }
    std::set<std::string> env = b.df->StageEnv(target);
    for (const std::string& tag : s.tags()) tag_env[tag].insert(env.begin(), env.end());
  }

  for (const Built& b : builds) {
    if (b.df == nullptr) continue;
    const v1::DockerBuildStage& s = b.task->spec().run().docker_build();
    ArgCheckOptions opt;
    opt.dockerfile = b.dockerfile;
    opt.who = absl::StrCat("pipeline stage ", b.task->spec().stage());
    for (const auto& [name, value] : s.build_args()) {
      opt.passed.insert(name);
      auto it = tag_env.find(value);
      if (it != tag_env.end()) opt.base_image_env.insert(it->second.begin(), it->second.end());
    }
    for (std::string& p : CheckPassedArgs(*b.df, opt)) Add(&out, &seen, std::move(p));
    for (std::string& p : CheckArgUses(*b.df, opt)) Add(&out, &seen, std::move(p));
  }
  return out;
}

}  // namespace musafarm::tests
