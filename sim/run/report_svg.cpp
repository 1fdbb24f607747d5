#include "report_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gradflow::detail {

namespace {

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return buf;
}

std::string tick_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

/// Blue (-1) - white (0) - red (+1), clamped.
std::string diverging(double t) {
  t = std::clamp(t, -1.0, 1.0);
  const double a = std::abs(t);
  const int other = static_cast<int>(std::lround(255 * (1 - a)));
  char buf[16];
  if (t < 0) std::snprintf(buf, sizeof buf, "#%02x%02x%02x", other, other, 255);
  else std::snprintf(buf, sizeof buf, "#%02x%02x%02x", 255, other, other);
  return buf;
}

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

std::string text(double x, double y, const std::string& s, const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" " + extra + ">" + html_escape(s) + "</text>";
}

/// "Nice" ticks covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int target = 6) {
  std::vector<double> t;
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return t;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string svg_heatmap(const Heatmap& h) {
  const double left = 110, top = 34, cell_w = std::clamp(560.0 / std::max<std::size_t>(1, h.x_ticks.size()), 6.0, 60.0);
  const double cell_h = std::clamp(300.0 / std::max<std::size_t>(1, h.y_ticks.size()), 14.0, 40.0);
  const double plot_w = cell_w * double(h.x_ticks.size()), plot_h = cell_h * double(h.y_ticks.size());
  const double width = left + plot_w + 120, height = top + plot_h + 60;
  std::string s = "<svg width=\"" + num(width) + "\" height=\"" + num(height) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">";
  s += text(left, 18, h.title, "font-size=\"13\" font-weight=\"bold\"");
  for (std::size_t y = 0; y < h.y_ticks.size(); ++y) {
    const double py = top + cell_h * double(y);
    for (std::size_t x = 0; x < h.x_ticks.size(); ++x) {
      const auto& v = h.value[y][x];
      const std::string fill = v ? diverging((*v - h.centre) / h.span) : "#cccccc";
      s += "<rect x=\"" + num(left + cell_w * double(x)) + "\" y=\"" + num(py) + "\" width=\"" + num(cell_w + 0.5) +
           "\" height=\"" + num(cell_h + 0.5) + "\" fill=\"" + fill + "\"><title>" +
           html_escape(h.y_ticks[y] + ", " + h.x_ticks[x] + ": " + (v ? tick_text(*v) : "no value")) +
           "</title></rect>";
    }
    s += text(left - 4, py + cell_h / 2 + 4, h.y_ticks[y], "text-anchor=\"end\"");
  }
  const std::size_t every = std::max<std::size_t>(1, h.x_ticks.size() / 12);
  for (std::size_t x = 0; x < h.x_ticks.size(); x += every)
    s += text(left + cell_w * (double(x) + 0.5), top + plot_h + 14, h.x_ticks[x], "text-anchor=\"middle\"");
  s += text(left + plot_w / 2, top + plot_h + 32, h.x_label, "text-anchor=\"middle\"");
  s += text(14, top + plot_h / 2, h.y_label,
            "text-anchor=\"middle\" transform=\"rotate(-90 14 " + num(top + plot_h / 2) + ")\"");
  // colour bar
  const double bx = left + plot_w + 24, bh = std::max(plot_h, 100.0);
  for (int i = 0; i < 50; ++i) {
    const double t = 1.0 - 2.0 * (i + 0.5) / 50;
    s += "<rect x=\"" + num(bx) + "\" y=\"" + num(top + bh * i / 50) + "\" width=\"14\" height=\"" + num(bh / 50 + 0.5) +
         "\" fill=\"" + diverging(t) + "\"/>";
  }
  s += text(bx + 18, top + 8, tick_text(h.centre + h.span));
  s += text(bx + 18, top + bh / 2 + 4, tick_text(h.centre));
  s += text(bx + 18, top + bh, tick_text(h.centre - h.span));
  s += text(bx, top + bh + 16, h.colour_label);
  return s + "</svg>";
}

namespace {

struct Frame {
  double left = 70, top = 34, w = 560, h = 300;
  double x0, x1, y0, y1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * w; }
  double py(double y) const { return top + h - (y - y0) / (y1 - y0) * h; }
};

std::string axes(const Frame& f, const std::string& title, const std::string& xl, const std::string& yl) {
  std::string s = text(f.left, 18, title, "font-size=\"13\" font-weight=\"bold\"");
  s += "<rect x=\"" + num(f.left) + "\" y=\"" + num(f.top) + "\" width=\"" + num(f.w) + "\" height=\"" + num(f.h) +
       "\" fill=\"none\" stroke=\"#444\"/>";
  for (double t : ticks(f.x0, f.x1)) {
    s += "<line x1=\"" + num(f.px(t)) + "\" x2=\"" + num(f.px(t)) + "\" y1=\"" + num(f.top) + "\" y2=\"" +
         num(f.top + f.h) + "\" stroke=\"#ddd\"/>";
    s += text(f.px(t), f.top + f.h + 14, tick_text(t), "text-anchor=\"middle\"");
  }
  for (double t : ticks(f.y0, f.y1)) {
    s += "<line x1=\"" + num(f.left) + "\" x2=\"" + num(f.left + f.w) + "\" y1=\"" + num(f.py(t)) + "\" y2=\"" +
         num(f.py(t)) + "\" stroke=\"#ddd\"/>";
    s += text(f.left - 4, f.py(t) + 4, tick_text(t), "text-anchor=\"end\"");
  }
  s += text(f.left + f.w / 2, f.top + f.h + 32, xl, "text-anchor=\"middle\"");
  s += text(14, f.top + f.h / 2, yl, "text-anchor=\"middle\" transform=\"rotate(-90 14 " + num(f.top + f.h / 2) + ")\"");
  return s;
}

void widen(double& lo, double& hi) {
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
}

}  // namespace

std::string svg_lines(const LinePlot& p) {
  Frame f;
  f.x0 = f.y0 = INFINITY;
  f.x1 = f.y1 = -INFINITY;
  for (const auto& line : p.lines)
    for (const auto& [x, y] : line)
      if (std::isfinite(x) && std::isfinite(y)) {
        f.x0 = std::min(f.x0, x), f.x1 = std::max(f.x1, x);
        f.y0 = std::min(f.y0, y), f.y1 = std::max(f.y1, y);
      }
  if (!std::isfinite(f.x0)) f.x0 = 0, f.x1 = 1, f.y0 = 0, f.y1 = 1;
  widen(f.x0, f.x1);
  widen(f.y0, f.y1);
  const double pad = 0.04 * (f.y1 - f.y0);
  f.y0 -= pad, f.y1 += pad;
  const double width = f.left + f.w + 230, height = f.top + f.h + 50;
  std::string s = "<svg width=\"" + num(width) + "\" height=\"" + num(height) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">";
  s += axes(f, p.title, p.x_label, p.y_label);
  for (std::size_t i = 0; i < p.lines.size(); ++i) {
    const std::string colour = kPalette[i % (sizeof kPalette / sizeof *kPalette)];
    std::string d;
    bool pen = false;
    for (const auto& [x, y] : p.lines[i]) {
      if (!std::isfinite(x) || !std::isfinite(y)) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + num(f.px(x)) + " " + num(f.py(y)) + " ";
      pen = true;
    }
    s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.5\"/>";
    const double ly = f.top + 10 + 16 * double(i);
    s += "<line x1=\"" + num(f.left + f.w + 10) + "\" x2=\"" + num(f.left + f.w + 30) + "\" y1=\"" + num(ly) + "\" y2=\"" +
         num(ly) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>";
    s += text(f.left + f.w + 34, ly + 4, i < p.labels.size() ? p.labels[i] : "");
  }
  return s + "</svg>";
}

std::string svg_eigenvalues(const std::string& title, const std::vector<std::pair<double, double>>& points,
                            double radius) {
  Frame f;
  f.w = f.h = 360;
  double r = std::max(1.0, radius);
  for (const auto& [re, im] : points) r = std::max({r, std::abs(re), std::abs(im)});
  r *= 1.08;
  f.x0 = f.y0 = -r;
  f.x1 = f.y1 = r;
  std::string s = "<svg width=\"" + num(f.left + f.w + 20) + "\" height=\"" +
                  num(f.top + f.h + 50) + "\" font-family=\"sans-serif\" font-size=\"11\">";
  s += axes(f, title, "Re(lambda)", "Im(lambda)");
  const double scale = f.w / (2 * r);
  s += "<circle cx=\"" + num(f.px(0)) + "\" cy=\"" + num(f.py(0)) + "\" r=\"" + num(scale) +
       "\" fill=\"none\" stroke=\"#888\" stroke-dasharray=\"4 3\"><title>unit circle</title></circle>";
  s += "<circle cx=\"" + num(f.px(0)) + "\" cy=\"" + num(f.py(0)) + "\" r=\"" + num(scale * radius) +
       "\" fill=\"none\" stroke=\"#d62728\"><title>|lambda| = rho(W)</title></circle>";
  for (const auto& [re, im] : points)
    s += "<circle cx=\"" + num(f.px(re)) + "\" cy=\"" + num(f.py(im)) + "\" r=\"1.8\" fill=\"#1f77b4\"/>";
  return s + "</svg>";
}

}  // namespace gradflow::detail
