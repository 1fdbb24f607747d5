// gradflow keys: the scenario key table (Markdown) from the key registry.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "gradflow/run/scenario.hpp"

namespace gradflow::cli {
namespace {

/// The scenario key table (Markdown), generated from the key registry: README's table is checked against it.
int cmd_keys() {
  std::printf("| key | type | default | meaning |\n|---|---|---|---|\n");
  for (const auto& k : scenario_keys()) {
    std::string type = to_string(k.type);
    type = type.substr(type.find(' ') + 1);
    std::string doc;
    for (char c : k.doc) doc += c == '|' ? std::string("\\|") : std::string(1, c);
    std::printf("| `%s` | %s | `%s` | %s |\n", k.name.c_str(), type.c_str(), k.default_text().c_str(), doc.c_str());
  }
  return kExitOk;
}

}  // namespace

Command add_keys(CLI::App& app) {
  auto* cmd = app.add_subcommand("keys", "Print every scenario key with its type, default and meaning (Markdown)");
  return {cmd, [] { return cmd_keys(); }};
}

}  // namespace gradflow::cli
