// torch.nn.GRU's cell, gate order r, z, n (rows of the stacked weights):
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
//   n = f(W_in x + b_in + r (W_hn h + b_hn)),    h' = (1 - z) n + z h = n + z (h - n).
// Step Jacobian J = diag(z) + diag(hz) W_hz + diag(cn rg) W_hr + diag(cn r) W_hn with
//   hz = (h - n) z (1 - z),  cn = (1 - z) f'(a_n),  rg = (W_hn h + b_hn) r (1 - r).
// The tape holds z, hz, cn rg and cn r: 4 N scalars per trajectory and step (the coefficients of the four
// diagonal matrices; the tape is written and read once per step from memory, so its size is what the
// forward's stores and the backward's loads cost).
#include <memory>

#include "cells.hpp"
#include "gated.hpp"

namespace gradflow::detail {
namespace {

template <class Scalar>
class GruCell final : public GatedCell<Scalar> {
  using Base = GatedCell<Scalar>;
  using typename Base::Arr;
  using typename Base::Index;
  using typename Base::Mat;
  using Base::n_;

 public:
  GruCell(const Model& model, Pass pass, Index columns) : Base(model, 3) {
    this->prepare_product(pass, columns);
    const Index n = n_;
    if (pass == Pass::forward) {
      this->prepare_forward(model, columns);
      gh_.resize(3 * n, columns);
      gi_.resize(3 * n, columns);
      scratch_.resize(n, 6);
    } else if (pass == Pass::backward) {
      d_.resize(3 * n, columns);
    } else {
      y_.resize(3 * n, columns);
      out_.resize(n, columns);
    }
  }

  Index state_size() const override { return n_; }
  Index tape_rows() const override { return tape_rows_per_unit(CellKind::gru) * n_; }
  std::vector<std::string> coefficient_names() const override { return {"z", "r", "hz", "cn_rg", "cn_r"}; }

  bool forward(const Mat& h_prev, const StepInput<Scalar>& x, Mat& h_next, Scalar* tape, StepStats* stats) override {
    const Index n = n_, batch = h_prev.cols();
    const StreamFence fence;  // this step's tape copies (stream_copy below), on every way out
    gh_.colwise() = this->b_recurrent_;
    this->recurrent_product(h_prev.data(), n, gh_.data(), 3 * n, batch, true);  // W_hr h, W_hz h, W_hn h in one
    gi_.colwise() = this->b_;
    this->add_input(x, gi_);
    Scalar* ar = scratch_.col(0).data();  // r's pre-activation, then r
    Scalar* dr = scratch_.col(1).data();  // r (1 - r)
    Scalar* az = scratch_.col(2).data();
    Scalar* dz = scratch_.col(3).data();
    Scalar* an = scratch_.col(4).data();
    Scalar* dn = scratch_.col(5).data();
    for (Index j = 0; j < batch; ++j) {
      const Scalar* gi = gi_.data() + j * 3 * n;
      const Scalar* gh = gh_.data() + j * 3 * n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        ar[i] = gi[i] + gh[i];
        az[i] = gi[n + i] + gh[n + i];
      }
      this->sigmoid_.template apply<Scalar>(ar, ar, dr, n);  // in place: r, r (1 - r)
      this->sigmoid_.template apply<Scalar>(az, az, dz, n);
#pragma omp simd
      for (Index i = 0; i < n; ++i) an[i] = gi[2 * n + i] + ar[i] * gh[2 * n + i];
      this->f_.template apply<Scalar>(an, an, dn, n);  // n, f'(a_n)
      const Scalar* h = h_prev.data() + j * n;
      Scalar* hn = h_next.data() + j * n;
      Scalar* t = this->stage_.data();  // the trajectory's tape column, streamed to the tape below
#pragma omp simd  // the arrays never overlap (without it, GCC gives up its alias checks: a scalar loop)
      for (Index i = 0; i < n; ++i) {
        const Scalar z = az[i], diff = h[i] - an[i];
        const Scalar cn = (Scalar(1) - z) * dn[i];
        hn[i] = an[i] + z * diff;
        t[i] = z;
        t[n + i] = diff * dz[i];
        t[2 * n + i] = cn * (gh[2 * n + i] * dr[i]);
        t[3 * n + i] = cn * ar[i];
      }
      if (!this->finite(hn, n)) return false;
      if (stats) this->record_statistics(*stats, dn, std::array<const Scalar*, 5>{t, ar, t + n, t + 2 * n, t + 3 * n});
      stream_copy(tape + j * 4 * n, t, 4 * n);
    }
    return true;
  }

  void backward(const Scalar* tape, Mat& g, const Scalar* scale, Mat& g_prev) override {
    // g_prev = z g + W_hr^T (cn rg g) + W_hz^T (hz g) + W_hn^T (cn r g), with g scaled per trajectory.
    const Index n = n_, batch = g.cols();
    for (Index j = 0; j < batch; ++j) {
      const Scalar* t = tape + j * 4 * n;
      const Scalar s = scale[j];
      const Scalar* gj = g.data() + j * n;
      Scalar* d = d_.data() + j * 3 * n;
      Scalar* gp = g_prev.data() + j * n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        const Scalar gs = gj[i] * s;
        d[i] = gs * t[2 * n + i];
        d[n + i] = gs * t[n + i];
        d[2 * n + i] = gs * t[3 * n + i];
        gp[i] = t[i] * gs;
      }
    }
    this->recurrent_product(d_.data(), 3 * n, g_prev.data(), n, batch, true);
  }

  void tangent(const Scalar* tape, Mat& q, Index k) override {
    // J q = z q + hz (W_hz q) + cn rg (W_hr q) + cn r (W_hn q).
    const Index n = n_, cols = q.cols();
    this->recurrent_product(q.data(), n, y_.data(), 3 * n, cols, false);
    for (Index c = 0; c < cols; ++c) {
      const Scalar* t = tape + (c / k) * 4 * n;
      const Scalar* y = y_.data() + c * 3 * n;
      const Scalar* qc = q.data() + c * n;
      Scalar* o = out_.data() + c * n;
#pragma omp simd
      for (Index i = 0; i < n; ++i)
        o[i] = t[i] * qc[i] + t[n + i] * y[n + i] + t[2 * n + i] * y[i] + t[3 * n + i] * y[2 * n + i];
    }
    q.swap(out_);
  }

 private:
  Mat gh_, gi_, scratch_, d_, y_, out_;
};

}  // namespace

template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_gru_cell(const Model& model, Pass pass, Eigen::Index columns) {
  return std::make_unique<GruCell<Scalar>>(model, pass, columns);
}

template std::unique_ptr<Cell<float>> make_gru_cell<float>(const Model&, Pass, Eigen::Index);
template std::unique_ptr<Cell<double>> make_gru_cell<double>(const Model&, Pass, Eigen::Index);

}  // namespace gradflow::detail
