#include <catch2/catch.hpp>

#include "gradflow/run/scenario.hpp"

using namespace gradflow;

namespace {

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_scenario(text, "t.toml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("an empty scenario is the documented defaults as one cell", "[scenario]") {
  const Scenario sc = parse_scenario("", "empty.toml");
  CHECK(sc.name == "empty");
  CHECK(sc.cell_count() == 1);
  CHECK(sc.replicates == 1);
  const Config c = sc.cell_config(0);
  const Config d;
  CHECK(c.network.units == d.network.units);
  CHECK(c.network.activation == ActivationKind::tanh);
  CHECK(c.spectrum.kind == SpectrumKind::ginibre);
  CHECK(!c.spectrum.radius);
}

TEST_CASE("every key is documented, has a default and round-trips through get/set", "[scenario]") {
  for (const auto& key : scenario_keys()) {
    INFO(key.name);
    CHECK(!key.doc.empty());
    CHECK(!key.default_text().empty());
    CHECK(find_key(key.name) == &key);
    Config c;
    const Value v = key.get(c);
    if (!std::holds_alternative<std::monostate>(v)) {
      key.set(c, v);
      CHECK(key.get(c) == v);
    }
  }
}

TEST_CASE("scenario values land in the config", "[scenario]") {
  const Scenario sc = parse_scenario(R"(
title = "t"
seed = 9
[network]
units = 32
activation = "leaky_relu"
alpha = 0.2
precision = "float"
[spectrum]
kind = "orthogonal"
radius = 1.5
[input]
kind = "none"
[loss]
kind = "final_state"
)",
                                     "x.toml");
  const Config c = sc.cell_config(0);
  CHECK(c.seed == 9);
  CHECK(c.network.units == 32);
  CHECK(c.network.make_activation().alpha == 0.2);
  CHECK(c.network.precision == Precision::float32);
  CHECK(c.spectrum.kind == SpectrumKind::orthogonal);
  CHECK(*c.spectrum.radius == 1.5);
  CHECK(c.input.kind == InputKind::none);
  CHECK(c.loss.kind == LossKind::final_state);
  CHECK(sc.origins.at("network.units").line == 5);
}

TEST_CASE("sweep axes expand as a Cartesian product in file order, first axis slowest", "[scenario][sweep]") {
  const Scenario sc = parse_scenario(R"(
[sweep]
"spectrum.radius" = { start = 0.5, stop = 2.5, num = 5 }
"network.activation" = ["tanh", "relu"]
replicates = 3
)",
                                     "s.toml");
  REQUIRE(sc.axes.size() == 2);
  CHECK(sc.axes[0].key == "spectrum.radius");
  CHECK(sc.axes[1].key == "network.activation");
  CHECK(sc.cell_count() == 10);
  CHECK(sc.replicates == 3);
  CHECK(*sc.cell_config(0).spectrum.radius == 0.5);
  CHECK(sc.cell_config(1).network.activation == ActivationKind::relu);
  CHECK(*sc.cell_config(2).spectrum.radius == 1.0);
  CHECK(*sc.cell_config(9).spectrum.radius == 2.5);
}

TEST_CASE("log ranges are geometric and integer keys are rounded", "[scenario][sweep]") {
  const Scenario sc = parse_scenario(R"(
[sweep]
network.units = { start = 10, stop = 1000, num = 3, scale = "log" }
)",
                                     "s.toml");
  REQUIRE(sc.axes.size() == 1);
  CHECK(sc.axes[0].key == "network.units");
  CHECK(sc.cell_config(0).network.units == 10);
  CHECK(sc.cell_config(1).network.units == 100);
  CHECK(sc.cell_config(2).network.units == 1000);
}

TEST_CASE("set overrides (--set) replace file values, takes TOML literals or bare words", "[scenario]") {
  const Scenario sc = parse_scenario("[network]\nunits = 8\n", "s.toml",
                                     {"network.units=16", "network.activation=relu", "spectrum.radius=2",
                                      "analysis.series=false", "title=two words"});
  const Config c = sc.cell_config(0);
  CHECK(c.network.units == 16);
  CHECK(c.network.activation == ActivationKind::relu);
  CHECK(*c.spectrum.radius == 2.0);
  CHECK(!c.analysis.series);
  CHECK(c.title == "two words");
}

TEST_CASE("set overrides accept spaces around the equals sign", "[scenario]") {
  const Scenario sc = parse_scenario("", "s.toml", {"spectrum.radius = 2", " network.activation =relu ", "title = a b"});
  const Config c = sc.cell_config(0);
  CHECK(*c.spectrum.radius == 2.0);
  CHECK(c.network.activation == ActivationKind::relu);
  CHECK(c.title == "a b");
  CHECK(error_of("", {" = 2"}) == "--set  = 2: expected key=value");
}

TEST_CASE("set overrides of sweep.KEY and sweep.replicates change the sweep", "[scenario]") {
  const std::string file = "[sweep]\n\"spectrum.radius\" = [0.5, 1.0]\n\"network.activation\" = [\"tanh\", \"relu\"]\n"
                           "replicates = 2\n";
  const Scenario sc = parse_scenario(file, "s.toml",
                                     {"sweep.replicates=5", "sweep.spectrum.radius = {start = 1, stop = 2, num = 3}",
                                      "sweep.input.std=[0.0, 0.5]"});
  CHECK(sc.replicates == 5);
  REQUIRE(sc.axes.size() == 3);
  CHECK(sc.axes[0].key == "spectrum.radius");  // replaced in place
  CHECK(sc.axes[0].values.size() == 3);
  CHECK(sc.axes[1].key == "network.activation");
  CHECK(sc.axes[2].key == "input.std");  // added after the file's axes
  CHECK(sc.cell_count() == 3 * 2 * 2);
  // Without [sweep] in the file, --set makes one.
  CHECK(parse_scenario("", "s.toml", {"sweep.network.units=[4, 8]"}).cell_count() == 2);
  CHECK(error_of("", {"sweep.replicates=0"}).find("sweep.replicates: expected an integer >= 1") != std::string::npos);
  CHECK(error_of("", {"sweep.spectrum.radius=[1,"}).find("expected a TOML value") != std::string::npos);
  CHECK(error_of("", {"sweep.network.unitz=[1]"}).find("unknown key network.unitz") != std::string::npos);
}

TEST_CASE("errors name where, the key, the value and the constraint", "[scenario][bad_input]") {
  CHECK(error_of("[network]\nunits = 0\n") == "t.toml:2:9: network.units = 0: must be >= 1");
  CHECK(error_of("[spectrum]\nradius = \"big\"\n") == "t.toml:2:10: spectrum.radius = \"big\": expected a number");
  CHECK(error_of("[network]\nactivaton = \"relu\"\n") ==
        "t.toml:2:1: unknown key network.activaton (did you mean network.activation?)");
  CHECK(error_of("", {"network.units=-1"}) == "--set network.units=-1: network.units = -1: must be >= 1");
  CHECK(error_of("[sweep]\n\"network.units\" = [4, 0]\n") == "t.toml:2:1: network.units = 0: must be >= 1");
  CHECK(error_of("[sweep]\n\"network.units\" = [4]\n", {"network.units=3"}).find("also fixed by --set") !=
        std::string::npos);
  CHECK(error_of("[network]\nunits = 4\n[analysis]\nlyapunov = 9\n")
            .find("analysis.lyapunov = 9: must be <= network.units = 4") != std::string::npos);
}

TEST_CASE("a file key naming a path the OS refuses to look at is an input error naming the key", "[scenario][bad_input]") {
  // A name longer than NAME_MAX (255): std::filesystem's throwing queries ended the program here (fuzz_scenario).
  const std::string name(300, 'h');
  for (const char* ext : {".npy", ".mtx", ".txt"}) {
    const std::string e = error_of("[spectrum]\nkind = \"file\"\nfile = \"" + name + ext + "\"\n");
    CHECK(e.rfind("t.toml:3:1: spectrum.file = \"", 0) == 0);
  }
  CHECK(error_of("[input]\nkind = \"file\"\nfile = \"" + name + ".npy\"\n").rfind("t.toml:3:1: input.file = \"", 0) == 0);
}

TEST_CASE("suggestions find the nearest key", "[scenario]") {
  CHECK(suggest_key("network.unit") == "network.units");
  CHECK(suggest_key("spectrum.raduis") == "spectrum.radius");
  CHECK(suggest_key("completely.unrelated.thing") == "");
}
