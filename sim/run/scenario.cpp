#include "gradflow/run/scenario.hpp"

#include <cstdio>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <memory>
#include <limits>
#include <sstream>
#include <unistd.h>

#include <toml++/toml.h>

#include "gradflow/model/matrix_io.hpp"


namespace gradflow {

// ---------------------------------------------------------------------------------------------------
// Scenario

std::int64_t Scenario::cell_count() const {
  std::int64_t n = 1;
  for (const auto& a : axes) n *= static_cast<std::int64_t>(a.values.size());
  return n;
}

bool Scenario::contains(std::int64_t cell, std::int64_t replicate) const {
  return cell >= 0 && cell < cell_count() && replicate >= 0 && replicate < replicates;
}

std::vector<std::size_t> Scenario::axis_indices(std::int64_t cell) const {
  std::vector<std::size_t> idx(axes.size());
  for (std::size_t i = axes.size(); i-- > 0;) {
    const auto n = static_cast<std::int64_t>(axes[i].values.size());
    idx[i] = static_cast<std::size_t>(cell % n);
    cell /= n;
  }
  return idx;
}

std::vector<Value> Scenario::cell_values(std::int64_t cell) const {
  const auto idx = axis_indices(cell);
  std::vector<Value> v;
  for (std::size_t i = 0; i < axes.size(); ++i) v.push_back(axes[i].values[idx[i]]);
  return v;
}

std::int64_t Scenario::recurrent_family(std::int64_t cell) const {
  const auto idx = axis_indices(cell);
  std::int64_t family = 0;
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i].key == "spectrum.radius") continue;
    family = family * static_cast<std::int64_t>(axes[i].values.size()) + static_cast<std::int64_t>(idx[i]);
  }
  return family;
}

Config Scenario::cell_config(std::int64_t cell) const {
  Config c = base;
  const auto values = cell_values(cell);
  for (std::size_t i = 0; i < axes.size(); ++i) find_key(axes[i].key)->set(c, values[i]);
  return c;
}

namespace {

void check_toml_depth(const std::string& text, const std::string& source);  // below: before toml++ parses

SourceLocation location_of(const toml::source_region& r, const std::string& file) {
  return SourceLocation{file, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

[[noreturn]] void fail(const SourceLocation& where, const std::string& what) {
  throw InputError(where.str() + ": " + what);
}

/// A TOML scalar as a Value; arrays and tables are not scalars.
bool scalar_value(const toml::node& node, Value* out) {
  if (auto v = node.as_boolean()) *out = v->get();
  else if (auto i = node.as_integer()) *out = i->get();
  else if (auto d = node.as_floating_point()) *out = d->get();
  else if (auto s = node.as_string()) *out = s->get();
  else return false;
  return true;
}

/// Sets `key` on `config`, turning a constraint violation into "where: key = value: constraint".
void apply_value(Config& config, const KeySpec& key, const Value& value, const SourceLocation& where) {
  try {
    key.set(config, value);
  } catch (const std::invalid_argument& e) {
    fail(where, key.name + " = " + format_value(value) + ": " + e.what());
  }
}

std::string unknown_key_message(const std::string& name) {
  std::string msg = "unknown key " + name;
  const std::string hint = suggest_key(name);
  if (!hint.empty()) msg += " (did you mean " + hint + "?)";
  return msg;
}

/// The values of one sweep axis: a list, or a range table {start, stop, num[, scale]}.
std::vector<Value> axis_values(const KeySpec& key, const toml::node& node, const SourceLocation& where) {
  std::vector<Value> values;
  if (auto arr = node.as_array()) {
    for (const auto& item : *arr) {
      Value v;
      if (!scalar_value(item, &v)) fail(where, "sweep axis " + key.name + ": list items must be scalars");
      values.push_back(v);
    }
  } else if (auto tbl = node.as_table()) {
    for (auto&& [k, v] : *tbl) {
      const std::string name(k.str());
      if (name != "start" && name != "stop" && name != "num" && name != "scale")
        fail(location_of(k.source(), where.file),
             "sweep axis " + key.name + ": unknown range key " + name + " (expected start, stop, num, scale)");
    }
    const auto start = (*tbl)["start"].value<double>();
    const auto stop = (*tbl)["stop"].value<double>();
    const auto num = (*tbl)["num"].value<std::int64_t>();
    const std::string scale = (*tbl)["scale"].value_or(std::string("linear"));
    if (!start || !stop || !num)
      fail(where, "sweep axis " + key.name + ": a range needs start, stop (numbers) and num (an integer)");
    if (*num < 1 || *num > 1000000)
      fail(where, "sweep axis " + key.name + ": num = " + std::to_string(*num) + ": must satisfy 1 <= num <= 1e6");
    if (scale != "linear" && scale != "log")
      fail(where, "sweep axis " + key.name + ": scale = \"" + scale + "\": expected \"linear\" or \"log\"");
    if (scale == "log" && (*start <= 0 || *stop <= 0))
      fail(where, "sweep axis " + key.name + ": scale = \"log\" needs start > 0 and stop > 0");
    if (key.type != ValueType::number && key.type != ValueType::integer)
      fail(where, "sweep axis " + key.name + ": a range needs a numeric key (" + key.name + " is " +
                      to_string(key.type) + ")");
    // Integer points are rounded from doubles: only |x| <= 2^53 round to the integer meant (and beyond
    // 2^63 llround has no answer at all).
    constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
    if (key.type == ValueType::integer && !(std::abs(*start) <= kExactIntegers && std::abs(*stop) <= kExactIntegers))
      fail(where, "sweep axis " + key.name + ": an integer range needs finite start and stop within +-2^53");
    for (std::int64_t i = 0; i < *num; ++i) {
      const double u = *num == 1 ? 0.0 : double(i) / double(*num - 1);
      // Linear points as a weighted mean: exact whenever the grid value is representable (1.75, not
      // 1.7499999999999998).
      double x = scale == "log" ? std::exp(std::log(*start) + u * (std::log(*stop) - std::log(*start)))
                                : (*start * double(*num - 1 - i) + *stop * double(i)) / double(*num - 1);
      if (*num == 1) x = *start;
      if (i == *num - 1 && *num > 1) x = *stop;  // exact end point
      if (key.type == ValueType::integer) values.push_back(static_cast<std::int64_t>(std::llround(x)));
      else values.push_back(x);
    }
  } else {
    Value single;
    if (!scalar_value(node, &single))
      fail(where, "sweep axis " + key.name + ": expected a list of values or {start, stop, num}");
    values.push_back(single);
  }
  if (values.empty()) fail(where, "sweep axis " + key.name + ": has no values");
  return values;
}

struct AxisNode {
  std::string key;
  const toml::node* node;
  SourceLocation where;
};

/// Flattens [sweep]: quoted dotted keys ("spectrum.radius" = ...) and nested tables (spectrum.radius = ...)
/// both name the key; a table holding start/stop/num is a range, not a nesting level.
void collect_axes(const toml::table& tbl, const std::string& prefix, const std::string& file,
                  std::vector<AxisNode>& out) {
  for (auto&& [k, v] : tbl) {
    const std::string name = prefix + std::string(k.str());
    const auto where = location_of(k.source(), file);
    if (auto sub = v.as_table(); sub && !sub->contains("start") && !sub->contains("stop") && !sub->contains("num")) {
      collect_axes(*sub, name + ".", file, out);
    } else {
      out.push_back(AxisNode{name, &v, where});
    }
  }
}

Value parse_override_value(const std::string& text) {
  try {
    check_toml_depth("v = " + text, "--set");
    const toml::table t = toml::parse("v = " + text);
    Value v;
    if (scalar_value(*t.get("v"), &v)) return v;
  } catch (const toml::parse_error&) {
  }
  return text;  // bare words: --set network.activation=relu
}

using OriginOf = std::function<SourceLocation(const std::string&)>;

/// Adds a file about to be read to the scenario's inputs, with its digest.
void record_input(const std::string& key, const std::filesystem::path& p, std::vector<InputFile>* inputs) {
  InputFile in{key, p.string(), "", 0};
  // Digest first: a file replaced while it is read then shows as changed at --resume, not as the same. The
  // error_code overload: a path the OS refuses to look at (a name too long, say) is left to the reader, which
  // names the key and the file; the throwing overload ended the program (found by fuzz_scenario).
  std::error_code ec;
  if (std::filesystem::is_regular_file(p, ec)) in.digest = file_digest(p, &in.bytes);
  inputs->push_back(std::move(in));
}

/// Reads one file key's matrix, turning a file problem into "where: key = "path": problem". `expected` is asked
/// with the size the file declares before anything is allocated; its answer names the key it is about
/// ("network.units = 16: but ...") and is reported where that key was set.
MatrixFile read_keyed_file(const std::string& key, const std::string& path, const std::filesystem::path& base_dir,
                           const OriginOf& origin_of, bool keep_sparse, const ShapeCheck& expected,
                           std::vector<InputFile>* inputs) {
  std::filesystem::path p = path;
  if (p.is_relative()) p = base_dir / p;
  try {
    if (inputs) record_input(key, p, inputs);
    if (keep_sparse) return read_matrix_file(p, expected);
    MatrixFile f;
    f.dense = read_matrix(p, expected);
    return f;
  } catch (const MatrixShapeError& e) {
    const std::string what = e.what();
    const std::string named = what.substr(0, what.find_first_of(" :"));
    fail(origin_of(find_key(named) ? named : key), what);
  } catch (const MatrixFileError& e) {
    fail(origin_of(key), key + " = \"" + path + "\": " + e.what());
  }
}

/// The base config under every combination of the swept values of the keys that decide the files' shapes, each
/// with those values as text (empty when none is swept): every cell's files must fit, so a file is refused by
/// the first of them it does not fit. Empty when there are more than kMaxShapeVariants combinations.
struct ShapeVariant {
  Config config;
  std::string swept;  // "network.units = 16, input.dim = 4"
};
constexpr double kMaxShapeVariants = 4096;

std::vector<ShapeVariant> shape_variants(const Scenario& sc) {
  static const std::vector<std::string> shape_keys{"network.units", "network.batch", "network.steps",
                                                   "analysis.burn_in", "input.dim", "input.kind", "network.cell"};
  std::vector<ShapeVariant> out{{sc.base, ""}};
  double combinations = 1;
  for (const auto& axis : sc.axes) {
    if (std::find(shape_keys.begin(), shape_keys.end(), axis.key) == shape_keys.end()) continue;
    if ((combinations *= double(axis.values.size())) > kMaxShapeVariants) return {};
    std::vector<ShapeVariant> next;
    for (const auto& v : out)
      for (const auto& value : axis.values) {
        ShapeVariant w = v;
        find_key(axis.key)->set(w.config, value);
        w.swept += (w.swept.empty() ? "" : ", ") + axis.key + " = " + format_value(value);
        next.push_back(std::move(w));
      }
    out = std::move(next);
  }
  return out;
}

/// What every cell needs of `shape_key`'s file (file_shape_problem), asked before it is read. Without variants
/// (a sweep of too many shapes) only W's squareness is checked early; validation checks the rest after reading.
ShapeCheck expected_shape(const std::vector<ShapeVariant>& variants, const Config& base, const std::string& shape_key) {
  return [&variants, &base, shape_key](Eigen::Index rows, Eigen::Index cols) -> std::string {
    if (variants.empty())
      return shape_key == "spectrum.file" && (rows != cols || rows == 0) ? file_shape_problem(base, shape_key, rows, cols)
                                                                          : std::string();
    const bool torch_tensor = shape_key.find(".npy") != std::string::npos;
    for (const auto& v : variants) {
      // torch has only these cells; validation names the mismatch for the others.
      const CellKind cell = v.config.network.cell;
      if (torch_tensor && cell != CellKind::vanilla && cell != CellKind::gru && cell != CellKind::lstm) continue;
      const std::string why = file_shape_problem(v.config, shape_key, rows, cols);
      if (!why.empty()) return why + (v.swept.empty() ? "" : " (in the sweep cells with " + v.swept + ")");
    }
    return "";
  };
}

/// The four tensors of [import] torch = DIR, each named in the message when it is missing or malformed.
std::shared_ptr<const TorchWeights> load_torch(const std::string& dir, const std::filesystem::path& base_dir,
                                               const OriginOf& origin_of, const std::vector<ShapeVariant>& variants,
                                               const Config& base, std::vector<InputFile>* inputs) {
  const SourceLocation where = origin_of("import.torch");
  std::filesystem::path folder = dir;
  if (folder.is_relative()) folder = base_dir / folder;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    fail(where, "import.torch = \"" + dir + "\": not a folder (expected the folder holding weight_ih_l0.npy, "
                "weight_hh_l0.npy, bias_ih_l0.npy and bias_hh_l0.npy)");
  // All four present before any is read (a missing one is the first thing to say), and recorded in this order.
  for (const char* name : {"weight_ih_l0.npy", "weight_hh_l0.npy", "bias_ih_l0.npy", "bias_hh_l0.npy"}) {
    if (!std::filesystem::exists(folder / name, ec))
      fail(where, "import.torch = \"" + dir + "\": " + (std::filesystem::path(dir) / name).string() +
                      " is missing (numpy.save of the module's state_dict entry " +
                      std::string(name).substr(0, std::string(name).size() - 4) + ")");
    if (inputs) record_input("import.torch", folder / name, inputs);
  }
  auto read = [&](const char* name) {
    return read_keyed_file("import.torch", (std::filesystem::path(dir) / name).string(), base_dir, origin_of,
                           /*keep_sparse=*/false, expected_shape(variants, base, name), nullptr).dense;
  };
  auto vector = [&](const char* name) -> Eigen::VectorXd {
    Eigen::MatrixXd m = read(name);
    if (m.cols() != 1 && m.rows() != 1)
      fail(where, "import.torch = \"" + dir + "\": " + name + " holds a " + std::to_string(m.rows()) + " x " +
                      std::to_string(m.cols()) + " matrix, expected a vector");
    return Eigen::Map<const Eigen::VectorXd>(m.data(), m.size());
  };
  auto t = std::make_shared<TorchWeights>();
  t->weight_hh = read("weight_hh_l0.npy");  // first: its shape says the most (cell kind and units)
  t->weight_ih = read("weight_ih_l0.npy");
  t->bias_ih = vector("bias_ih_l0.npy");
  t->bias_hh = vector("bias_hh_l0.npy");
  return t;
}

/// Loads every file a config names (W, x, U, h_0, b) that is not loaded yet, each checked against the shape
/// every cell needs before it is read (`variants`, see shape_variants). Coordinate .mtx files for W stay
/// sparse; everything else is read dense.
void load_files(Config& c, const std::filesystem::path& base_dir, const OriginOf& origin_of,
                const std::vector<ShapeVariant>& variants, std::vector<InputFile>* inputs) {
  auto& sc = c.spectrum;
  if (sc.kind == SpectrumKind::file && !sc.file.empty() && !sc.matrix && !sc.sparse_matrix) {
    MatrixFile f = read_keyed_file("spectrum.file", sc.file, base_dir, origin_of, /*keep_sparse=*/true,
                                   expected_shape(variants, c, "spectrum.file"), inputs);
    if (f.is_sparse()) sc.sparse_matrix = f.sparse;
    else sc.matrix = std::make_shared<const Eigen::MatrixXd>(std::move(f.dense));
  }
  auto load_dense = [&](const std::string& key, const std::string& path,
                        std::shared_ptr<const Eigen::MatrixXd>& slot) {
    if (path.empty() || slot) return;
    MatrixFile f = read_keyed_file(key, path, base_dir, origin_of, /*keep_sparse=*/false,
                                   expected_shape(variants, c, key), inputs);
    slot = std::make_shared<const Eigen::MatrixXd>(std::move(f.dense));
  };
  if (c.input.kind == InputKind::file) load_dense("input.file", c.input.file, c.input.sequence);
  if (c.input.kind != InputKind::none) load_dense("input.weights", c.input.weights, c.input.matrix);
  if (c.init.state == InitState::file) load_dense("init.file", c.init.file, c.init.matrix);
  load_dense("bias.file", c.bias.file, c.bias.vector);
  load_dense("init.cell_file", c.init.cell_file, c.init.cell_matrix);
  if (!c.import.torch.empty() && !c.import.weights)
    c.import.weights = load_torch(c.import.torch, base_dir, origin_of, variants, c, inputs);
}

/// Keys naming files: loaded once with the base config, so they cannot be sweep axes.
bool is_file_key(const std::string& key) {
  return key == "spectrum.file" || key == "input.file" || key == "input.weights" || key == "init.file" ||
         key == "bias.file" || key == "init.cell_file" || key == "import.torch";
}

}  // namespace

Scenario parse_scenario(const std::string& text, const std::string& source_name,
                        const std::vector<std::string>& overrides, const std::filesystem::path& base_dir) {
  toml::table root;
  check_toml_depth(text, source_name);
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    fail(location_of(e.source(), source_name), "TOML syntax error: " + std::string(e.description()));
  }

  Scenario sc;
  sc.path = source_name;
  sc.name = std::filesystem::path(source_name).stem().string();
  sc.overrides = overrides;

  const toml::table* sweep = nullptr;
  SourceLocation sweep_where{source_name, 1, 1};
  for (auto&& [k, v] : root) {
    const std::string section(k.str());
    const auto where = location_of(k.source(), source_name);
    if (section == "sweep") {
      sweep = v.as_table();
      if (!sweep) fail(where, "sweep must be a table ([sweep])");
      sweep_where = where;
      continue;
    }
    auto set_leaf = [&](const std::string& name, const toml::node& node, const SourceLocation& at) {
      const KeySpec* key = find_key(name);
      if (!key) fail(at, unknown_key_message(name));
      Value value;
      if (!scalar_value(node, &value)) {
        if (node.is_table()) fail(at, name + ": is a table here, expected " + to_string(key->type));
        fail(at, name + ": is an array here, expected " + to_string(key->type) + " (lists belong in [sweep])");
      }
      apply_value(sc.base, *key, value, location_of(node.source(), source_name));
      sc.origins[name] = at;
    };
    if (auto tbl = v.as_table()) {
      bool known_section = false;
      for (const auto& key : scenario_keys()) known_section |= key.name.rfind(section + ".", 0) == 0;
      if (!known_section) fail(where, "unknown section [" + section + "]" + [&] {
        const std::string hint = suggest_key(section + ".x");
        return hint.empty() ? std::string() : " (did you mean [" + hint.substr(0, hint.find('.')) + "]?)";
      }());
      for (auto&& [k2, v2] : *tbl)
        set_leaf(section + "." + std::string(k2.str()), v2, location_of(k2.source(), source_name));
    } else {
      set_leaf(section, v, where);
    }
  }

  // --set sweep.replicates=N and --set 'sweep.KEY=[...]' (or a range table) change the sweep itself: parsed
  // as TOML here, they replace the file's entry (keeping its place) or add an axis after the file's.
  struct SweepSet {
    std::string key;
    std::unique_ptr<toml::table> holder;  // keeps the parsed node alive
    SourceLocation where;
  };
  std::vector<SweepSet> sweep_sets;
  auto trim = [](std::string t) {
    const auto a = t.find_first_not_of(" \t"), b = t.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : t.substr(a, b - a + 1);
  };
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    const SourceLocation where{"--set " + o, 0, 0};
    if (eq == std::string::npos || eq == 0) fail(where, "expected key=value");
    // 'spectrum.radius = 2' as well as 'spectrum.radius=2': spaces around the key and the value are not part of them.
    const std::string name = trim(o.substr(0, eq));
    if (name.empty()) fail(where, "expected key=value");
    if (name.rfind("sweep.", 0) == 0 && name.size() > 6) {
      SweepSet set{name.substr(6), std::make_unique<toml::table>(), where};
      try {
        *set.holder = toml::parse("v = " + trim(o.substr(eq + 1)));
      } catch (const toml::parse_error&) {
        fail(where, "expected a TOML value: a list [a, b], a range {start = a, stop = b, num = n} or, for "
                    "sweep.replicates, an integer");
      }
      sweep_sets.push_back(std::move(set));
      continue;
    }
    const KeySpec* key = find_key(name);
    if (!key) fail(where, unknown_key_message(name));
    apply_value(sc.base, *key, parse_override_value(trim(o.substr(eq + 1))), where);
    sc.origins[name] = where;
  }

  if (sweep || !sweep_sets.empty()) {
    std::vector<AxisNode> nodes;
    if (sweep) collect_axes(*sweep, "", source_name, nodes);
    // toml++ keeps tables sorted by key; axes follow the order in which they are written.
    std::stable_sort(nodes.begin(), nodes.end(), [](const AxisNode& a, const AxisNode& b) {
      return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    for (const auto& set : sweep_sets) {
      const AxisNode replacement{set.key, set.holder->get("v"), set.where};
      const auto same = std::find_if(nodes.begin(), nodes.end(), [&](const AxisNode& n) { return n.key == set.key; });
      if (same != nodes.end()) *same = replacement;
      else nodes.push_back(replacement);
    }
    for (const auto& an : nodes) {
      if (an.key == "replicates") {
        const auto r = an.node->value<std::int64_t>();
        if (!an.node->is_integer() || !r || *r < 1)
          fail(an.where, "sweep.replicates: expected an integer >= 1");
        sc.replicates = *r;
        continue;
      }
      const KeySpec* key = find_key(an.key);
      if (!key) fail(an.where, "sweep axis " + unknown_key_message(an.key));
      if (an.key == "title" || an.key == "seed")
        fail(an.where, "sweep axis " + an.key + ": cannot be swept (use replicates for independent draws)");
      if (is_file_key(an.key))
        fail(an.where, "sweep axis " + an.key + ": files cannot be swept (run one scenario per file)");
      for (const auto& axis : sc.axes)
        if (axis.key == an.key) fail(an.where, "sweep axis " + an.key + ": appears twice");
      if (sc.origins.count(an.key) && sc.origins[an.key].line == 0)
        fail(an.where, "sweep axis " + an.key + ": also fixed by " + sc.origins[an.key].file +
                           " (drop the --set or the axis, or set the axis's values with --set 'sweep." + an.key + "=[...]')");
      sc.axes.push_back(SweepAxis{an.key, axis_values(*key, *an.node, an.where), an.where});
    }
  }
  const std::int64_t max_cells = 100000000;
  double cells = double(sc.replicates);
  for (const auto& a : sc.axes) cells *= double(a.values.size());
  if (cells > double(max_cells)) {
    // The count as a double: it can exceed every integer type (replicates up to 2^63 times the axes).
    char count[32];
    std::snprintf(count, sizeof count, cells < 1e15 ? "%.0f" : "%.3g", cells);
    fail(sweep_where, std::string("sweep: ") + count + " cells x replicates: must be <= 1e8");
  }

  // Every axis value and every cell, validated before any work starts.
  for (const auto& axis : sc.axes) {
    const KeySpec& key = *find_key(axis.key);
    for (const auto& v : axis.values) {
      Config probe = sc.base;
      apply_value(probe, key, v, axis.where);
    }
  }
  const std::filesystem::path dir = base_dir;
  const std::function<SourceLocation(const std::string&)> origin_of = [&](const std::string& key) {
    for (const auto& axis : sc.axes)
      if (axis.key == key) return axis.where;
    auto it = sc.origins.find(key);
    return it != sc.origins.end() ? it->second : SourceLocation{source_name, 0, 0};
  };
  const std::vector<ShapeVariant> variants = shape_variants(sc);
  load_files(sc.base, dir, origin_of, variants, &sc.inputs);
  // Keys given (in the file, by --set, or as an axis) that may have no effect: used by any cell?
  std::vector<std::string> given;
  for (const auto& key : conditional_keys())
    if (sc.origins.count(key) || std::any_of(sc.axes.begin(), sc.axes.end(), [&](const SweepAxis& a) {
          return a.key == key;
        }))
      given.push_back(key);
  std::vector<std::string> unused_why(given.size());
  std::vector<char> used(given.size(), 0);
  for (std::int64_t cell = 0; cell < sc.cell_count(); ++cell) {
    Config c = sc.cell_config(cell);
    for (std::size_t k = 0; k < given.size(); ++k)
      if (!used[k]) {
        std::string why = unused_reason(c, given[k]);
        if (why.empty()) used[k] = 1;
        else if (unused_why[k].empty()) unused_why[k] = std::move(why);
      }
    try {
      validate_config(c);
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      const std::string key = what.substr(0, what.find_first_of(" :"));
      std::string where_cell;
      if (!sc.axes.empty()) {
        where_cell = " (sweep cell " + std::to_string(cell) + ":";
        const auto values = sc.cell_values(cell);
        for (std::size_t i = 0; i < sc.axes.size(); ++i)
          where_cell += " " + sc.axes[i].key + " = " + format_value(values[i]);
        where_cell += ")";
      }
      fail(origin_of(key), what + where_cell);
    }
    sc.peak_cell_bytes = std::max(sc.peak_cell_bytes, cell_memory_bytes(c));
    sc.peak_units = std::max<std::int64_t>(sc.peak_units, c.network.units);
    if (sc.axes.empty()) break;
  }
  for (std::size_t k = 0; k < given.size(); ++k) {
    if (used[k]) continue;
    for (const auto& axis : sc.axes)
      if (axis.key == given[k])
        fail(axis.where, "sweep axis " + given[k] + ": has no effect in any cell (" + unused_why[k] +
                             "); the sweep would only show replicate noise");
    const Value v = find_key(given[k])->get(sc.base);
    sc.warnings.push_back(sc.origins[given[k]].str() + ": " + given[k] + " = " + format_value(v) +
                          ": has no effect (" + unused_why[k] + ")");
  }
  return sc;
}

std::string file_digest(const std::filesystem::path& file, std::uint64_t* bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string() + ": cannot be read");
  std::uint64_t h = 1469598103934665603ULL, n = 0;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < got; ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ULL;
    n += got;
  }
  if (bytes) *bytes = n;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

namespace {

constexpr std::uintmax_t kMaxScenarioBytes = 16u << 20;  // far above any real scenario (a few kB)
constexpr int kMaxKeySegments = 32;   // dotted segments of one key (gradflow's have 2)
constexpr int kMaxNesting = 32;       // nested arrays / inline tables (gradflow's scenarios use 2)

/// Refuses keys with very many dotted segments and deeply nested values before toml++ sees them: its
/// recursive descent overflows the stack on a key of 40,000 segments (Debian's toml++ 3.3). A small scan
/// that knows only strings, comments and brackets; everything else is left to toml++.
void check_toml_depth(const std::string& text, const std::string& source) {
  int line = 1, segments = 1;
  bool key = true;          // scanning a key (line start, table header, after '{' or ',' in a table)
  std::string brackets;     // open '[' and '{' of values
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    auto fail_here = [&](const std::string& what) {
      throw InputError(source + ":" + std::to_string(line) + ": " + what);
    };
    if (c == '\n') {
      ++line;
      if (brackets.empty()) key = true, segments = 1;
      continue;
    }
    if (c == '#') {  // comment: to the end of the line
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {  // a string, possibly multi-line (triple quotes); skipped whole
      const bool triple = text.compare(i, 3, std::string(3, c)) == 0;
      const std::string close = triple ? std::string(3, c) : std::string(1, c);
      std::size_t j = i + close.size();
      for (; j < text.size(); ++j) {
        if (text[j] == '\n') ++line;
        if (c == '"' && text[j] == '\\') { ++j; continue; }
        if (text.compare(j, close.size(), close) == 0) break;
        if (!triple && text[j] == '\n') break;  // unterminated: toml++ reports it
      }
      i = std::min(text.size(), j + close.size()) - 1;
      continue;
    }
    if (key && c == '.' && ++segments > kMaxKeySegments)
      fail_here("a key with more than " + std::to_string(kMaxKeySegments) +
                " dotted segments; expected keys like spectrum.radius");
    if (c == '=' && key) key = false, segments = 1;
    if (!key && (c == '[' || c == '{')) {
      brackets.push_back(c);
      if (static_cast<int>(brackets.size()) > kMaxNesting)
        fail_here("values nested more than " + std::to_string(kMaxNesting) + " deep");
      if (c == '{') key = true, segments = 1;
    } else if (!key && (c == ']' || c == '}') && !brackets.empty()) {
      brackets.pop_back();
    } else if (key && c == '}' && !brackets.empty()) {
      brackets.pop_back();
      key = false;
    } else if (!key && c == ',' && !brackets.empty() && brackets.back() == '{') {
      key = true, segments = 1;
    }
  }
}

}  // namespace

Scenario load_scenario(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (status.type() == std::filesystem::file_type::not_found)
    throw InputError(file.string() + ": no such scenario file");
  if (status.type() == std::filesystem::file_type::directory)
    throw InputError(file.string() + ": is a directory, expected a scenario file (.toml)");
  // A device or FIFO (/dev/zero, a named pipe) would be read without end or block forever.
  if (status.type() != std::filesystem::file_type::regular)
    throw InputError(file.string() + ": is not a regular file, expected a scenario file (.toml)");
  const std::uintmax_t size = std::filesystem::file_size(file, ec);
  if (!ec && size > kMaxScenarioBytes)
    throw InputError(file.string() + ": is " + std::to_string(size) + " bytes, expected a scenario file of at most " +
                     std::to_string(kMaxScenarioBytes >> 20) + " MB");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string() + ": cannot be read (permission?)");
  std::string text(static_cast<std::size_t>(std::min<std::uintmax_t>(size, kMaxScenarioBytes)) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxScenarioBytes)  // it grew since stat()
    throw InputError(file.string() + ": more than " + std::to_string(kMaxScenarioBytes >> 20) +
                     " MB, expected a scenario file");
  Scenario sc = parse_scenario(text, file.string(), overrides, file.parent_path().empty() ? "." : file.parent_path());
  sc.path = file;
  return sc;
}

}  // namespace gradflow
