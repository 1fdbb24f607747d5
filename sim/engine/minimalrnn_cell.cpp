// The minimalRNN of Chen, Pennington & Schoenholz 2018 ("Dynamical isometry and a mean field theory of RNNs:
// gating enables signal propagation"):
//   z = f(W_x x + b_z)   (the input map),   u = sigmoid(U_h h + U_z z + b_u),   h' = u h + (1 - u) z.
// Step Jacobian J = diag(u) + diag(hu) U_h with hu = (h - z) u (1 - u); the tape holds u and hu: 2 N scalars
// per trajectory and step.
#include <memory>

#include "cells.hpp"
#include "gated.hpp"

namespace gradflow::detail {
namespace {

template <class Scalar>
class MinimalRnnCell final : public GatedCell<Scalar> {
  using Base = GatedCell<Scalar>;
  using typename Base::Index;
  using typename Base::Mat;
  using Base::n_;

 public:
  MinimalRnnCell(const Model& model, Pass pass, Index columns) : Base(model, 1) {
    this->prepare_product(pass, columns);
    const Index n = n_;
    if (pass == Pass::forward) {
      this->prepare_forward(model, columns);
      u_z_ = model.w_gate_input.cast<Scalar>();
      z_.resize(n, columns);
      dz_.resize(n, columns);
      pre_.resize(n, columns);
      du_.resize(n, 1);
    } else if (pass == Pass::backward) {
      d_.resize(n, columns);
    } else {
      y_.resize(n, columns);
    }
  }

  Index state_size() const override { return n_; }
  Index tape_rows() const override { return tape_rows_per_unit(CellKind::minimalrnn) * n_; }
  std::vector<std::string> coefficient_names() const override { return {"u", "hu"}; }

  bool forward(const Mat& h_prev, const StepInput<Scalar>& x, Mat& h_next, Scalar* tape, StepStats* stats) override {
    const Index n = n_, batch = h_prev.cols();
    const StreamFence fence;  // this step's tape copies (stream_copy below), on every way out
    z_.colwise() = this->b_;
    this->add_input(x, z_);
    for (Index j = 0; j < batch; ++j) {
      Scalar* zj = z_.data() + j * n;
      this->f_.template apply<Scalar>(zj, zj, dz_.data() + j * n, n);
    }
    pre_.colwise() = this->b_recurrent_;
    this->recurrent_product(h_prev.data(), n, pre_.data(), n, batch, true);
    pre_.noalias() += u_z_ * z_;
    Scalar* du = du_.data();
    for (Index j = 0; j < batch; ++j) {
      Scalar* u = pre_.data() + j * n;
      this->sigmoid_.template apply<Scalar>(u, u, du, n);
      const Scalar* h = h_prev.data() + j * n;
      const Scalar* z = z_.data() + j * n;
      Scalar* hn = h_next.data() + j * n;
      Scalar* t = this->stage_.data();  // the trajectory's tape column, streamed to the tape below
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        hn[i] = u[i] * h[i] + (Scalar(1) - u[i]) * z[i];
        t[i] = u[i];
        t[n + i] = (h[i] - z[i]) * du[i];
      }
      if (!this->finite(hn, n)) return false;
      if (stats) {
        this->record_statistics(*stats, dz_.data() + j * n, std::array<const Scalar*, 2>{t, t + n});
      }
      stream_copy(tape + j * 2 * n, t, 2 * n);
    }
    return true;
  }

  void backward(const Scalar* tape, Mat& g, const Scalar* scale, Mat& g_prev) override {
    // g_prev = u g + U_h^T (hu g), g scaled per trajectory.
    const Index n = n_, batch = g.cols();
    for (Index j = 0; j < batch; ++j) {
      const Scalar* t = tape + j * 2 * n;
      const Scalar s = scale[j];
      const Scalar* gj = g.data() + j * n;
      Scalar* d = d_.data() + j * n;
      Scalar* gp = g_prev.data() + j * n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        const Scalar gs = gj[i] * s;
        d[i] = t[n + i] * gs;
        gp[i] = t[i] * gs;
      }
    }
    this->recurrent_product(d_.data(), n, g_prev.data(), n, batch, true);
  }

  void tangent(const Scalar* tape, Mat& q, Index k) override {
    const Index n = n_, cols = q.cols();
    this->recurrent_product(q.data(), n, y_.data(), n, cols, false);
    for (Index c = 0; c < cols; ++c) {
      const Scalar* t = tape + (c / k) * 2 * n;
      Scalar* qc = q.data() + c * n;
      const Scalar* y = y_.data() + c * n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) qc[i] = t[i] * qc[i] + t[n + i] * y[i];
    }
  }

 private:
  Mat u_z_, z_, dz_, pre_, du_, d_, y_;
};

}  // namespace

template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_minimalrnn_cell(const Model& model, Pass pass, Eigen::Index columns) {
  return std::make_unique<MinimalRnnCell<Scalar>>(model, pass, columns);
}

template std::unique_ptr<Cell<float>> make_minimalrnn_cell<float>(const Model&, Pass, Eigen::Index);
template std::unique_ptr<Cell<double>> make_minimalrnn_cell<double>(const Model&, Pass, Eigen::Index);

}  // namespace gradflow::detail
