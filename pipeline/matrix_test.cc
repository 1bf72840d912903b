#include "pipeline/matrix.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Cells(const std::vector<Cell>& cells) {
  std::vector<std::string> out;
  for (const Cell& c : cells) out.push_back(CellDesc(c));
  return out;
}

// Parses the `matrix` entry of `yaml` with `options`.
absl::Status Matrix(const std::string& yaml, const ExpandOptions& options, Pipeline* p) {
  const YamlReader r(yaml, "m.yaml");
  const YAML::Node root = YAML::Load(yaml);
  std::vector<Entry> entries;
  if (absl::Status s = r.Entries(root, root.Mark(), "", &entries); !s.ok()) return s;
  return MatrixParser(r).ParseMatrix(entries.at(0), options, p);
}

TEST(MatrixTest, CellsAreTheProductFirstAxisOutermost) {
  Pipeline p;
  ASSERT_TRUE(
      Matrix("matrix:\n  variant: [dev, release]\n  python: ['3.8', '3.9']\n", {}, &p).ok());
  EXPECT_THAT(Cells(p.cells),
              ElementsAre("(dev, 3.8)", "(dev, 3.9)", "(release, 3.8)", "(release, 3.9)"));
  EXPECT_EQ(Cells(p.file_cells), Cells(p.cells));
  EXPECT_THAT(AxisNames(p), ElementsAre("variant", "python"));
}

TEST(MatrixTest, ExcludeRemovesAndIncludeAddsCellsAndVariables) {
  Pipeline p;
  ASSERT_TRUE(Matrix(R"(matrix:
  variant: [dev, release]
  python: ['3.8', '3.9']
  exclude:
    - {variant: release, python: '3.8'}
  include:
    - {variant: dev, python: '3.10', torch: '2.2'}
    - {runner: big}
)",
                     {}, &p)
                  .ok());
  EXPECT_THAT(Cells(p.cells),
              ElementsAre("(dev, 3.8)", "(dev, 3.9)", "(release, 3.9)", "(dev, 3.10)"));
  EXPECT_THAT(p.include_vars, ElementsAre("torch", "runner"));
  ASSERT_EQ(p.cells[3].extras.size(), 2u);
  EXPECT_EQ(p.cells[3].extras[0].value, "2.2");
  EXPECT_EQ(p.cells[0].extras.size(), 1u);  // runner only
}

TEST(MatrixTest, AxisOptionsReplaceValuesButTheFileCellsStay) {
  Pipeline p;
  ExpandOptions o;
  o.axes = {{"python", {"3.11"}}};
  ASSERT_TRUE(Matrix("matrix:\n  python: ['3.8', '3.9']\n", o, &p).ok());
  EXPECT_THAT(Cells(p.cells), ElementsAre("(3.11)"));
  EXPECT_THAT(Cells(p.file_cells), ElementsAre("(3.8)", "(3.9)"));
  EXPECT_EQ(WithAxisOptions(p), " (with --axis python)");
}

TEST(MatrixTest, ErrorsPointIntoTheFileOrNameTheOption) {
  Pipeline p;
  EXPECT_EQ(Matrix("matrix:\n  python: ['3.8', '3.8']\n", {}, &p).message(),
            "m.yaml:2:19: matrix.python[1]: duplicate value '3.8'");
  Pipeline q;
  EXPECT_EQ(Matrix("matrix:\n  python: []\n", {}, &q).message(),
            "m.yaml:2:11: matrix.python: axis 'python' has no values, so the matrix has no cells");
  Pipeline big;
  const std::string eleven = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n";  // 11^3 > 1024
  EXPECT_THAT(
      std::string(Matrix("matrix:\n  a: " + eleven + "  b: " + eleven + "  c: " + eleven, {}, &big)
                      .message()),
      HasSubstr("m.yaml:1:1: matrix: matrix has more than 1024 cells"));
  Pipeline opt;
  ExpandOptions o;
  o.axes = {{"pyton", {"3.9"}}};
  EXPECT_EQ(Matrix("matrix:\n  python: ['3.8']\n", o, &opt).message(),
            "m.yaml: --axis pyton: 'pyton' is not a matrix axis (axes: python)");
}

TEST(MatrixTest, NoMatrixIsOneCellWithoutAxes) {
  const YamlReader r("", "m.yaml");
  Pipeline p;
  ASSERT_TRUE(MatrixParser(r).NoMatrix({}, &p).ok());
  ASSERT_EQ(p.cells.size(), 1u);
  EXPECT_TRUE(p.cells[0].values.empty());
  Pipeline q;
  ExpandOptions o;
  o.axes = {{"python", {"3.9"}}};
  EXPECT_EQ(MatrixParser(r).NoMatrix(o, &q).message(),
            "m.yaml: --axis python: 'python' is not a matrix axis (the pipeline has no matrix "
            "axes)");
}

}  // namespace
}  // namespace musafarm::pipeline
