#pragma once

// A small metrics registry rendered in Prometheus's text format (0.0.4):
// counters, gauges and histograms in families with fixed label names. Label
// values must come from small fixed sets (states, stage names capped by the
// caller); never a job or task id, or the number of series grows with the farm's
// history. Not thread-safe: the coordinator updates and renders it on the core
// loop only.

#include <map>
#include <string>
#include <vector>

namespace musafarm::coordinator {

class MetricsRegistry {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Declares a family. `name` follows Prometheus's conventions (snake case,
  // unit suffix such as _seconds or _bytes, _total for counters); histograms
  // take their upper bounds in `buckets` (ascending; +Inf is implied).
  void Declare(const std::string& name, Type type, const std::string& help,
               std::vector<std::string> label_names, std::vector<double> buckets = {});

  // `label_values` in the declared order. Undeclared names or a wrong number
  // of values are bugs (MF_CHECK).
  void Add(const std::string& name, const std::vector<std::string>& label_values, double v = 1);
  void Set(const std::string& name, const std::vector<std::string>& label_values, double v);
  void Observe(const std::string& name, const std::vector<std::string>& label_values, double v);
  // Sets every series of a gauge family to 0 (before setting the current
  // values at a scrape, so a state nothing is in reads 0 rather than vanishing).
  void ZeroGauges(const std::string& name);

  double Value(const std::string& name, const std::vector<std::string>& label_values) const;
  size_t SeriesCount() const;  // lines of samples Render() writes
  std::string Render() const;

 private:
  struct Series {
    double value = 0;             // counter, gauge; histogram: sum
    uint64_t count = 0;           // histogram
    std::vector<uint64_t> bins;   // histogram, per bucket (not cumulative)
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> buckets;
    std::map<std::vector<std::string>, Series> series;
  };
  Series& Find(const std::string& name, const std::vector<std::string>& label_values, Type type);

  std::map<std::string, Family> families_;
};

// Escapes a label value for the text format (backslash, quote, newline).
std::string EscapeLabelValue(const std::string& v);

}  // namespace musafarm::coordinator
