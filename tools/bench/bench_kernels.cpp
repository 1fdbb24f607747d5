// Google Benchmark micro-benchmarks of the engine's kernels (not tests: nothing asserts a time).
//   build/tools/bench/bench_kernels --benchmark_filter=tanh
// items_per_second is scalars per second for the activation, steps x trajectories per second for the passes.
#include <random>

#include <benchmark/benchmark.h>
#include <Eigen/Core>

#include "gradflow/numerics/activation.hpp"
#include "gradflow/numerics/blas.hpp"
#include "gradflow/engine/engine.hpp"
#include "gradflow/numerics/random.hpp"
#include "gradflow/model/spectrum.hpp"

namespace {

using namespace gradflow;

template <class Scalar>
void BM_activation(benchmark::State& state, ActivationKind kind) {
  const Eigen::Index n = state.range(0);
  using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Arr a = Arr::Random(n) * Scalar(3);
  Arr h(n), d(n);
  const Activation f(kind);
  for (auto _ : state) {
    f.apply<Scalar>(a.data(), h.data(), d.data(), n);
    benchmark::DoNotOptimize(h.data());
    benchmark::DoNotOptimize(d.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

struct Setup {
  Model model;
  Drive drive;
};

Setup make_setup(Eigen::Index n, Eigen::Index batch, Eigen::Index steps) {
  Setup s;
  Rng rng(1);
  s.model.w = random_recurrent(SpectrumKind::ginibre, n, 1.0, rng);
  s.model.u.resize(n, 0);
  s.model.b = Eigen::VectorXd::Constant(n, 0.1);
  s.model.activation = Activation(ActivationKind::tanh);
  s.drive.steps = steps;
  s.drive.h0 = Eigen::MatrixXd::Zero(n, batch);
  s.drive.loss = LossKind::final_state;
  return s;
}

template <class Scalar>
void BM_forward(benchmark::State& state) {
  const Setup s = make_setup(state.range(0), state.range(1), state.range(2));
  for (auto _ : state) benchmark::DoNotOptimize(forward_pass<Scalar>(s.model, s.drive));
  state.SetItemsProcessed(state.iterations() * state.range(1) * state.range(2));
}

template <class Scalar>
void BM_backward(benchmark::State& state) {
  const Setup s = make_setup(state.range(0), state.range(1), state.range(2));
  const Tape<Scalar> tape = forward_pass<Scalar>(s.model, s.drive);
  for (auto _ : state) benchmark::DoNotOptimize(backward_pass<Scalar>(s.model, s.drive, tape));
  state.SetItemsProcessed(state.iterations() * state.range(1) * state.range(2));
}

void BM_tanh_double(benchmark::State& s) { BM_activation<double>(s, ActivationKind::tanh); }
void BM_tanh_float(benchmark::State& s) { BM_activation<float>(s, ActivationKind::tanh); }
void BM_sigmoid_double(benchmark::State& s) { BM_activation<double>(s, ActivationKind::sigmoid); }
void BM_gelu_double(benchmark::State& s) { BM_activation<double>(s, ActivationKind::gelu); }
void BM_gelu_float(benchmark::State& s) { BM_activation<float>(s, ActivationKind::gelu); }
void BM_relu_double(benchmark::State& s) { BM_activation<double>(s, ActivationKind::relu); }
void BM_relu_float(benchmark::State& s) { BM_activation<float>(s, ActivationKind::relu); }
BENCHMARK(BM_tanh_double)->Arg(256)->Arg(8192);
BENCHMARK(BM_sigmoid_double)->Arg(256)->Arg(8192);
BENCHMARK(BM_tanh_float)->Arg(8192);
BENCHMARK(BM_gelu_double)->Arg(8192);
BENCHMARK(BM_gelu_float)->Arg(8192);
BENCHMARK(BM_relu_double)->Arg(8192);
BENCHMARK(BM_relu_float)->Arg(8192);
BENCHMARK_TEMPLATE(BM_forward, double)->Args({256, 32, 100})->Args({64, 1, 1000})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_forward, float)->Args({256, 32, 100})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_backward, double)->Args({256, 32, 100})->Args({64, 1, 1000})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_backward, float)->Args({256, 32, 100})->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  gradflow::set_gemm_threads(1);  // one cell on one core, as in a sweep
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
