#include "cli/completion.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace musafarm::cli {
namespace {

// What a value of an option is completed with.
enum class ValueKind { kNone, kChoices, kFile, kDir };

struct ValueOption {
  std::vector<std::string> names;  // "--output", "-o"
  ValueKind kind = ValueKind::kNone;
  std::vector<std::string> choices;
};

// One command of the tree, by its path from the top ("musafarm/agents/revoke").
struct Node {
  std::string path;
  std::vector<std::pair<std::string, std::string>> subcommands;  // name, description
  std::vector<std::string> options;                              // every spelling, flags too
  std::vector<ValueOption> value_options;
  bool takes_file = false;  // a positional FILE (submit's pipeline)
};

std::vector<std::string> Spellings(const CLI::Option* opt) {
  std::vector<std::string> names;
  for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
  for (const std::string& s : opt->get_snames()) names.push_back("-" + s);
  return names;
}

ValueKind KindOf(const CommandTree& tree, const CLI::Option* opt) {
  if (tree.Choices(opt) != nullptr) return ValueKind::kChoices;
  const std::string type = opt->get_type_name();
  if (type == "FILE") return ValueKind::kFile;
  if (type == "DIR") return ValueKind::kDir;
  return ValueKind::kNone;
}

// Options of `app` and, where subcommands fall through to their parents,
// the parents' too: what may be typed after the command.
void AddOptions(const CommandTree& tree, const CLI::App* app, Node* node) {
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* opt : a->get_options()) {
      if (opt->get_positional()) {
        if (a == app && KindOf(tree, opt) == ValueKind::kFile) node->takes_file = true;
        continue;
      }
      // A subcommand's own option hides its parent's of the same name.
      const std::vector<std::string> names = Spellings(opt);
      bool hidden = false;
      for (const std::string& n : names) {
        for (const std::string& have : node->options) hidden = hidden || have == n;
      }
      if (hidden) continue;
      node->options.insert(node->options.end(), names.begin(), names.end());
      if (opt->get_expected_max() == 0) continue;  // a flag
      ValueOption v;
      v.names = names;
      v.kind = KindOf(tree, opt);
      if (const std::vector<std::string>* c = tree.Choices(opt); c != nullptr) v.choices = *c;
      node->value_options.push_back(std::move(v));
    }
    if (!a->get_fallthrough()) break;
  }
}

void Walk(const CommandTree& tree, const CLI::App* app, const std::string& path,
          std::vector<Node>* nodes) {
  Node node;
  node.path = path;
  AddOptions(tree, app, &node);
  const std::vector<const CLI::App*> subs =
      app->get_subcommands([](const CLI::App*) { return true; });
  for (const CLI::App* sub : subs) {
    node.subcommands.emplace_back(sub->get_name(), sub->get_description());
  }
  nodes->push_back(std::move(node));
  for (const CLI::App* sub : subs) Walk(tree, sub, path + "/" + sub->get_name(), nodes);
}

std::vector<Node> Nodes(const CommandTree& tree) {
  std::vector<Node> nodes;
  Walk(tree, &tree.app(), tree.app().get_name(), &nodes);
  return nodes;
}

// "musafarm/jobs|musafarm/status|...": every path below the top, for the
// case that follows the words typed so far down the tree.
std::string SubcommandPattern(const std::vector<Node>& nodes, const char* sep) {
  std::vector<std::string> paths;
  for (const Node& n : nodes) {
    for (const auto& [name, desc] : n.subcommands) paths.push_back(n.path + "/" + name);
  }
  return absl::StrJoin(paths, sep);
}

// "musafarm/jobs/--output|musafarm/jobs/-o" for each command that has it.
std::string ValuePattern(const Node& node, const ValueOption& v, const char* sep) {
  std::vector<std::string> alts;
  for (const std::string& n : v.names) alts.push_back(node.path + "/" + n);
  return absl::StrJoin(alts, sep);
}

// Text inside a zsh or bash single-quoted string.
std::string SingleQuoted(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// The first sentence of a description, for zsh's list.
std::string Summary(const std::string& desc) {
  std::string s = desc.substr(0, desc.find_first_of(":("));
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

std::string BashCompletion(const CommandTree& tree) {
  const std::vector<Node> nodes = Nodes(tree);
  const std::string top = tree.app().get_name();
  std::string s = absl::StrCat("# bash completion for ", top, ", made by `", top,
                               " completion bash` from its command tree.\n"
                               "_",
                               top,
                               "() {\n"
                               "  local cur=${COMP_WORDS[COMP_CWORD]} prev=\n"
                               "  (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
                               "  local cmd=",
                               top,
                               " i\n"
                               "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
                               "    case \"$cmd/${COMP_WORDS[i]}\" in\n"
                               "      ",
                               SubcommandPattern(nodes, "|"),
                               ") cmd=$cmd/${COMP_WORDS[i]} ;;\n"
                               "    esac\n"
                               "  done\n"
                               "  case \"$cmd/$prev\" in\n");
  for (const Node& n : nodes) {
    for (const ValueOption& v : n.value_options) {
      absl::StrAppend(&s, "    ", ValuePattern(n, v, "|"), ")\n      ");
      switch (v.kind) {
        case ValueKind::kChoices:
          absl::StrAppend(&s, "COMPREPLY=($(compgen -W \"", absl::StrJoin(v.choices, " "),
                          "\" -- \"$cur\"))");
          break;
        case ValueKind::kFile:
          s += "COMPREPLY=($(compgen -f -- \"$cur\"))";
          break;
        case ValueKind::kDir:
          s += "COMPREPLY=($(compgen -d -- \"$cur\"))";
          break;
        case ValueKind::kNone:
          s += "COMPREPLY=()";
          break;
      }
      s += "\n      return ;;\n";
    }
  }
  s += "  esac\n  local words=\n  case $cmd in\n";
  for (const Node& n : nodes) {
    std::vector<std::string> subs;
    for (const auto& [name, desc] : n.subcommands) subs.push_back(name);
    absl::StrAppend(&s, "    ", n.path, ")\n      if [[ $cur == -* ]]; then words=\"",
                    absl::StrJoin(n.options, " "), "\"; else words=\"", absl::StrJoin(subs, " "),
                    "\"; fi ;;\n");
  }
  absl::StrAppend(&s,
                  "  esac\n"
                  "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                  "}\n"
                  // -o default: file names where nothing else fits (a pipeline file).
                  "complete -o default -F _",
                  top, " ", top, "\n");
  return s;
}

std::string ZshCompletion(const CommandTree& tree) {
  const std::vector<Node> nodes = Nodes(tree);
  const std::string top = tree.app().get_name();
  std::string s = absl::StrCat("#compdef ", top, "\n# zsh completion for ", top, ", made by `", top,
                               " completion zsh` from its command tree.\n"
                               "_",
                               top,
                               "() {\n"
                               // `path` is zsh's $PATH array: the command so far is `cmd`.
                               "  local cmd=",
                               top,
                               " i cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n"
                               "  for ((i = 2; i < CURRENT; i++)); do\n"
                               "    case \"$cmd/${words[i]}\" in\n"
                               "      (",
                               SubcommandPattern(nodes, "|"),
                               ") cmd=$cmd/${words[i]} ;;\n"
                               "    esac\n"
                               "  done\n"
                               "  case \"$cmd/$prev\" in\n");
  for (const Node& n : nodes) {
    for (const ValueOption& v : n.value_options) {
      absl::StrAppend(&s, "    (", ValuePattern(n, v, "|"), ")\n      ");
      switch (v.kind) {
        case ValueKind::kChoices:
          absl::StrAppend(&s, "compadd -- ", absl::StrJoin(v.choices, " "));
          break;
        case ValueKind::kFile:
          s += "_files";
          break;
        case ValueKind::kDir:
          s += "_files -/";
          break;
        case ValueKind::kNone:
          s += ":";
          break;
      }
      s += "\n      return ;;\n";
    }
  }
  s += "  esac\n  local -a subcommands flags\n  case $cmd in\n";
  for (const Node& n : nodes) {
    std::vector<std::string> subs;
    for (const auto& [name, desc] : n.subcommands) {
      subs.push_back(SingleQuoted(absl::StrCat(name, ":", Summary(desc))));
    }
    absl::StrAppend(&s, "    (", n.path, ")\n      subcommands=(", absl::StrJoin(subs, " "),
                    ")\n      flags=(", absl::StrJoin(n.options, " "), ") ;;\n");
  }
  absl::StrAppend(&s,
                  "  esac\n"
                  "  if [[ $cur == -* ]]; then\n"
                  "    compadd -- $flags\n"
                  "  elif (( ${#subcommands} )); then\n"
                  "    _describe -t commands command subcommands\n"
                  "  else\n"
                  "    _files\n"
                  "  fi\n"
                  "}\n"
                  // Sourced: register; autoloaded from $fpath: complete now.
                  "if [[ ${funcstack[1]} == _",
                  top, " ]]; then\n  _", top, " \"$@\"\nelse\n  compdef _", top, " ", top,
                  "\nfi\n");
  return s;
}

}  // namespace musafarm::cli
