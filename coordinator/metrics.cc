#include "coordinator/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace musafarm::coordinator {
namespace {

const char* TypeName(MetricsRegistry::Type t) {
  switch (t) {
    case MetricsRegistry::Type::kCounter:
      return "counter";
    case MetricsRegistry::Type::kGauge:
      return "gauge";
    case MetricsRegistry::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.9g", v);
}

// {a="x",b="y"} plus an optional extra pair (a histogram's le).
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, out.empty() ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  return out.empty() ? "" : absl::StrCat("{", out, "}");
}

}  // namespace

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsRegistry::Declare(const std::string& name, Type type, const std::string& help,
                              std::vector<std::string> label_names, std::vector<double> buckets) {
  Family& f = families_[name];
  f.type = type;
  f.help = help;
  f.label_names = std::move(label_names);
  f.buckets = std::move(buckets);
}

MetricsRegistry::Series& MetricsRegistry::Find(const std::string& name,
                                               const std::vector<std::string>& label_values,
                                               Type type) {
  auto it = families_.find(name);
  MF_CHECK(it != families_.end(), "metric {} not declared", name);
  Family& f = it->second;
  MF_CHECK(f.type == type && f.label_names.size() == label_values.size(),
           "metric {} used with the wrong type or labels", name);
  Series& s = f.series[label_values];
  if (type == Type::kHistogram && s.bins.empty()) s.bins.assign(f.buckets.size() + 1, 0);
  return s;
}

void MetricsRegistry::Add(const std::string& name, const std::vector<std::string>& label_values,
                          double v) {
  auto it = families_.find(name);
  const Type t = it != families_.end() && it->second.type == Type::kGauge ? Type::kGauge
                                                                          : Type::kCounter;
  Find(name, label_values, t).value += v;
}

void MetricsRegistry::Set(const std::string& name, const std::vector<std::string>& label_values,
                          double v) {
  Find(name, label_values, Type::kGauge).value = v;
}

void MetricsRegistry::Observe(const std::string& name,
                              const std::vector<std::string>& label_values, double v) {
  Series& s = Find(name, label_values, Type::kHistogram);
  const std::vector<double>& b = families_[name].buckets;
  const size_t bin = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  ++s.bins[bin];
  ++s.count;
  s.value += v;
}

void MetricsRegistry::ZeroGauges(const std::string& name) {
  auto it = families_.find(name);
  if (it == families_.end()) return;
  for (auto& [labels, s] : it->second.series) s.value = 0;
}

double MetricsRegistry::Value(const std::string& name,
                              const std::vector<std::string>& label_values) const {
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto s = it->second.series.find(label_values);
  if (s == it->second.series.end()) return 0;
  return it->second.type == Type::kHistogram ? static_cast<double>(s->second.count)
                                             : s->second.value;
}

size_t MetricsRegistry::SeriesCount() const {
  size_t n = 0;
  for (const auto& [name, f] : families_) {
    n += f.type == Type::kHistogram ? f.series.size() * (f.buckets.size() + 3) : f.series.size();
  }
  return n;
}

std::string MetricsRegistry::Render() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n# TYPE ", name, " ", TypeName(f.type),
                    "\n");
    for (const auto& [values, s] : f.series) {
      if (f.type != Type::kHistogram) {
        absl::StrAppend(&out, name, LabelSet(f.label_names, values), " ", Number(s.value), "\n");
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= f.buckets.size(); ++i) {
        cumulative += s.bins[i];
        const std::string le = i < f.buckets.size() ? Number(f.buckets[i]) : "+Inf";
        absl::StrAppend(&out, name, "_bucket", LabelSet(f.label_names, values, "le", le), " ",
                        cumulative, "\n");
      }
      absl::StrAppend(&out, name, "_sum", LabelSet(f.label_names, values), " ", Number(s.value),
                      "\n", name, "_count", LabelSet(f.label_names, values), " ", s.count, "\n");
    }
  }
  return out;
}

}  // namespace musafarm::coordinator
