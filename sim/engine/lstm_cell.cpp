// torch.nn.LSTM's cell, gate order i, f, g, o (rows of the stacked weights), state S = (h, c):
//   a = W_ih x + b_ih + W_hh h + b_hh,  i = sigmoid(a_i), f = sigmoid(a_f), g = f_act(a_g), o = sigmoid(a_o),
//   c' = f c + i g,  h' = o f_act(c').
// Step Jacobian on (h, c), with K = cf W_hf + gi W_hi + ig W_hg:
//   dc'/dh = K,  dc'/dc = diag(f),  dh'/dh = diag(po) W_ho + diag(oc) K,  dh'/dc = diag(oc f),
//   oc = o f_act'(c'),  po = f_act(c') o (1 - o),  cf = c f (1 - f),  gi = g i (1 - i),  ig = i f_act'(a_g).
// The tape holds f, oc, po, cf, gi and ig: 6 N scalars per trajectory and step.
#include <memory>

#include "cells.hpp"
#include "gated.hpp"

namespace gradflow::detail {
namespace {

template <class Scalar>
class LstmCell final : public GatedCell<Scalar> {
  using Base = GatedCell<Scalar>;
  using typename Base::Arr;
  using typename Base::Index;
  using typename Base::Mat;
  using typename Base::Vec;
  using Base::n_;

 public:
  LstmCell(const Model& model, Pass pass, Index columns) : Base(model, 4) {
    this->prepare_product(pass, columns);
    const Index n = n_;
    if (pass == Pass::forward) {
      this->prepare_forward(model, columns);
      bias_ = this->b_ + this->b_recurrent_;
      pre_.resize(4 * n, columns);
      scratch_.resize(n, 8);
    } else if (pass == Pass::backward) {
      d_.resize(4 * n, columns);
    } else {
      y_.resize(4 * n, columns);
      out_.resize(2 * n, columns);
    }
  }

  Index state_size() const override { return 2 * n_; }
  Index tape_rows() const override { return tape_rows_per_unit(CellKind::lstm) * n_; }
  std::vector<std::string> coefficient_names() const override {
    return {"f", "i", "o", "oc", "po", "cf", "gi", "ig"};
  }

  bool forward(const Mat& s_prev, const StepInput<Scalar>& x, Mat& s_next, Scalar* tape, StepStats* stats) override {
    const Index n = n_, batch = s_prev.cols();
    const StreamFence fence;  // this step's tape copies (stream_copy below), on every way out
    pre_.colwise() = bias_;
    // One stacked product of the h rows of the state: W_hi h, W_hf h, W_hg h, W_ho h.
    this->recurrent_product(s_prev.data(), 2 * n, pre_.data(), 4 * n, batch, true);
    this->add_input(x, pre_);
    Scalar* gi_ = scratch_.col(0).data();  // i, then i (1 - i) in di
    Scalar* di = scratch_.col(1).data();
    Scalar* gf = scratch_.col(2).data();
    Scalar* df = scratch_.col(3).data();
    Scalar* gg = scratch_.col(4).data();
    Scalar* dg = scratch_.col(5).data();
    Scalar* go = scratch_.col(6).data();
    Scalar* dphi = scratch_.col(7).data();
    for (Index j = 0; j < batch; ++j) {
      const Scalar* a = pre_.data() + j * 4 * n;
      this->sigmoid_.template apply<Scalar>(a, gi_, di, n);
      this->sigmoid_.template apply<Scalar>(a + n, gf, df, n);
      this->f_.template apply<Scalar>(a + 2 * n, gg, dg, n);
      this->sigmoid_.template apply<Scalar>(a + 3 * n, go, dphi, n);  // dphi holds o (1 - o) for a moment
      const Scalar* h = s_prev.data() + j * 2 * n;
      const Scalar* c = h + n;
      Scalar* hn = s_next.data() + j * 2 * n;
      Scalar* cn = hn + n;
      Scalar* t = this->stage_.data();  // the trajectory's tape column, streamed to the tape below
#pragma omp simd  // the arrays never overlap (without it, GCC gives up its alias checks: a scalar loop)
      for (Index i = 0; i < n; ++i) {
        cn[i] = gf[i] * c[i] + gi_[i] * gg[i];
        t[4 * n + i] = dphi[i];  // o (1 - o), completed below
      }
      this->f_.template apply<Scalar>(cn, hn, dphi, n);  // f_act(c'), f_act'(c')
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        const Scalar phi = hn[i];
        hn[i] = go[i] * phi;
        t[i] = gf[i];
        t[n + i] = go[i] * dphi[i];
        t[2 * n + i] = phi * t[4 * n + i];
        t[3 * n + i] = c[i] * df[i];
        t[4 * n + i] = gg[i] * di[i];
        t[5 * n + i] = gi_[i] * dg[i];
      }
      if (!this->finite(hn, 2 * n)) return false;
      if (stats) {  // f, i, o, oc, po, cf, gi, ig
        this->record_statistics(*stats, dg, std::array<const Scalar*, 8>{t, gi_, go, t + n, t + 2 * n, t + 3 * n,
                                                                          t + 4 * n, t + 5 * n});
      }
      stream_copy(tape + j * 6 * n, t, 6 * n);
    }
    return true;
  }

  void backward(const Scalar* tape, Mat& g, const Scalar* scale, Mat& g_prev) override {
    // dc = g_c + oc g_h;  g_prev_c = f dc;  g_prev_h = W^T [gi dc; cf dc; ig dc; po g_h].
    const Index n = n_, batch = g.cols();
    for (Index j = 0; j < batch; ++j) {
      const Scalar* t = tape + j * 6 * n;
      const Scalar s = scale[j];
      const Scalar* gh = g.data() + j * 2 * n;
      const Scalar* gc = gh + n;
      Scalar* d = d_.data() + j * 4 * n;
      Scalar* pc = g_prev.data() + j * 2 * n + n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        const Scalar h = gh[i] * s;
        const Scalar dc = gc[i] * s + t[n + i] * h;
        d[i] = t[4 * n + i] * dc;
        d[n + i] = t[3 * n + i] * dc;
        d[2 * n + i] = t[5 * n + i] * dc;
        d[3 * n + i] = t[2 * n + i] * h;
        pc[i] = t[i] * dc;
      }
    }
    this->recurrent_product(d_.data(), 4 * n, g_prev.data(), 2 * n, batch, false);  // the h rows
  }

  void tangent(const Scalar* tape, Mat& q, Index k) override {
    // dc' = f q_c + cf (W_hf q_h) + gi (W_hi q_h) + ig (W_hg q_h);  dh' = po (W_ho q_h) + oc dc'.
    const Index n = n_, cols = q.cols();
    this->recurrent_product(q.data(), 2 * n, y_.data(), 4 * n, cols, false);
    for (Index col = 0; col < cols; ++col) {
      const Scalar* t = tape + (col / k) * 6 * n;
      const Scalar* y = y_.data() + col * 4 * n;
      const Scalar* qc = q.data() + col * 2 * n + n;
      Scalar* oh = out_.data() + col * 2 * n;
      Scalar* oc = oh + n;
#pragma omp simd
      for (Index i = 0; i < n; ++i) {
        const Scalar dc = t[i] * qc[i] + t[3 * n + i] * y[n + i] + t[4 * n + i] * y[i] + t[5 * n + i] * y[2 * n + i];
        oc[i] = dc;
        oh[i] = t[2 * n + i] * y[3 * n + i] + t[n + i] * dc;
      }
    }
    q.swap(out_);
  }

 private:
  Vec bias_;
  Mat pre_, scratch_, d_, y_, out_;
};

}  // namespace

template <class Scalar>
std::unique_ptr<Cell<Scalar>> make_lstm_cell(const Model& model, Pass pass, Eigen::Index columns) {
  return std::make_unique<LstmCell<Scalar>>(model, pass, columns);
}

template std::unique_ptr<Cell<float>> make_lstm_cell<float>(const Model&, Pass, Eigen::Index);
template std::unique_ptr<Cell<double>> make_lstm_cell<double>(const Model&, Pass, Eigen::Index);

}  // namespace gradflow::detail
