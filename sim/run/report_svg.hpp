#pragma once
// The report's figures as inline SVG, drawn here (no plotting library, nothing to download, no Python
// needed on the machine that ran the sweep). Internal to the run layer (report.cpp).

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gradflow::detail {

/// Text safe inside HTML/SVG (& < > " ').
std::string html_escape(const std::string& text);

/// A heatmap: value[y][x] (nullopt: no cell), coloured on a diverging scale centred on `centre` and
/// saturating at centre +- `span` (blue below, white at the centre, red above).
struct Heatmap {
  std::string title, x_label, y_label, colour_label;
  std::vector<std::string> x_ticks, y_ticks;
  std::vector<std::vector<std::optional<double>>> value;
  double centre = 0.0, span = 1.0;
};
std::string svg_heatmap(const Heatmap& h);

/// Line plot of several labelled series (x, y); non-finite points break the line.
struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<std::string> labels;
  std::vector<std::vector<std::pair<double, double>>> lines;
};
std::string svg_lines(const LinePlot& p);

/// Points in the complex plane with the circle |z| = radius (and the unit circle, dashed).
std::string svg_eigenvalues(const std::string& title, const std::vector<std::pair<double, double>>& points,
                            double radius);

}  // namespace gradflow::detail
