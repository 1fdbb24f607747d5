#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "gradflow/run/scenario.hpp"
#include "gradflow/run/verdict.hpp"

using namespace gradflow;
namespace fs = std::filesystem;

namespace {

const char* kScenario = R"(
[network]
units = 8
[sweep]
"spectrum.radius" = [0.5, 2.0]
"network.activation" = ["tanh", "relu"]
)";

// Cells: 0 = (0.5, tanh), 1 = (0.5, relu), 2 = (2.0, tanh), 3 = (2.0, relu); tolerance 0.01.
const char* kCells =
    "cell,replicate,spectrum.radius,network.activation,predictor,mf_growth,regime,growth_rate,lyapunov_max,"
    "lyapunov_status\n"
    "0,0,0.5,tanh,0.5,0.5,vanishing,0.5,-0.69,ok\n"
    "1,0,0.5,relu,0.995,,critical,1.0,0,ok\n"
    "2,0,2,tanh,0.94,1.17,exploding,1.17,0.157,ok\n"
    "3,0,2,relu,1.5,1.4,vanishing,0,,annihilated\n"
    "3,0,2,relu,1.5\n";  // a line cut short by a kill: ignored

const nlohmann::json& find(const nlohmann::json& v, const std::string& name) {
  for (const auto& p : v["predictors"])
    if (p["name"] == name) return p;
  FAIL("no predictor " << name);
  static const nlohmann::json none;
  return none;
}

}  // namespace

TEST_CASE("verdicts count, per predictor, the rows whose predicted regime equals the measured one",
          "[verdict]") {
  const Scenario sc = parse_scenario(kScenario, "verdict.toml");
  const fs::path file = fs::temp_directory_path() / ("gradflow_verdict_" + std::to_string(::getpid()) + ".csv");
  std::ofstream(file) << kCells;
  const nlohmann::json v = compute_verdicts(sc, file);
  fs::remove(file);

  CHECK(v["rows"] == 4);
  REQUIRE(v["predictors"].size() == 3);  // predictor, mf_growth, lyapunov_max: the columns present
  CHECK(v["predictors"][0]["name"] == "predictor");

  const auto& p = find(v, "predictor");
  CHECK(p["compared"] == 4);
  CHECK(p["agree"] == 2);
  CHECK(p["agreement"].get<double>() == 0.5);
  CHECK(p["confusion"]["vanishing"]["exploding"] == 1);  // 0.94 says vanishing where the rate is 1.17
  CHECK(p["confusion"]["exploding"]["vanishing"] == 1);
  CHECK(p["confusion"]["critical"]["critical"] == 1);    // 0.995 is within the tolerance of 1
  REQUIRE(p["disagreements"].size() == 2);
  CHECK(p["disagreements"][0]["cell"] == 2);
  CHECK(p["disagreements"][0]["predicted"] == "vanishing");
  CHECK(p["disagreements"][0]["measured"] == "exploding");
  CHECK(p["disagreements"][0]["values"]["network.activation"] == "tanh");
  CHECK(p["disagreements"][0]["values"]["spectrum.radius"] == 2.0);
  CHECK(p["disagreements"][0]["growth_rate"] == 1.17);
  CHECK(p["disagreements_total"] == 2);
  CHECK(p["disagreements_truncated"] == false);
  const auto& by_act = p["by_axis"]["network.activation"];
  CHECK(by_act[0]["value"] == "tanh");
  CHECK(by_act[0]["compared"] == 2);
  CHECK(by_act[0]["agree"] == 1);

  const auto& mf = find(v, "mf_growth");
  CHECK(mf["compared"] == 3);
  CHECK(mf["unavailable"] == 1);
  CHECK(mf["agree"] == 2);

  // lyapunov_max is judged as exp(lyapunov_max); an annihilated frame is a factor of 0 (vanishing).
  const auto& ly = find(v, "lyapunov_max");
  CHECK(ly["compared"] == 4);
  CHECK(ly["agree"] == 4);

  const std::string text = format_verdicts(v);
  CHECK(text.find("predictor") != std::string::npos);
  CHECK(text.find("2/4") != std::string::npos);
  CHECK(text.find("most often says exploding where vanishing (1)") != std::string::npos);  // ties: first
}

TEST_CASE("verdicts list at most max_listed disagreements and refuse a file without the regime column",
          "[verdict]") {
  const Scenario sc = parse_scenario(kScenario, "verdict.toml");
  const fs::path file = fs::temp_directory_path() / ("gradflow_verdict2_" + std::to_string(::getpid()) + ".csv");
  std::ofstream(file) << kCells;
  const nlohmann::json v = compute_verdicts(sc, file, 1);
  CHECK(find(v, "predictor")["disagreements"].size() == 1);
  CHECK(find(v, "predictor")["disagreements_truncated"] == true);
  std::ofstream(file) << "cell,replicate,predictor\n0,0,1.0\n";
  CHECK_THROWS_AS(compute_verdicts(sc, file), std::runtime_error);
  fs::remove(file);
}
