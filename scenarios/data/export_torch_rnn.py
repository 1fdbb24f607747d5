#!/usr/bin/env python3
"""Train a small PyTorch nn.RNN and export its weights with numpy.save for gradflow (scenarios/imported_rnn.toml).

The README's worked example. Run with Debian's python3-torch (apt-get install python3-torch):

    /usr/bin/python3 scenarios/data/export_torch_rnn.py      # writes scenarios/data/rnn_*.npy (~7 KB)

torch.nn.RNN with nonlinearity="tanh" computes h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), which is
gradflow's vanilla cell with W = weight_hh_l0 (N x N), U = weight_ih_l0 (N x dim) and b = b_ih + b_hh.
numpy.save writes float32, C-order arrays; gradflow reads them as they are.
"""
import os

import numpy as np
import torch

HIDDEN, INPUTS, DELAY = 32, 4, 5
BURN_IN, STEPS = 20, 100  # the scenario's analysis.burn_in and network.steps
out = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)

# Delayed recall: reproduce input channel 0 from DELAY steps ago. Solving it needs memory, which is what
# gradient flow through time is about.
rnn = torch.nn.RNN(INPUTS, HIDDEN, nonlinearity="tanh", batch_first=True)
readout = torch.nn.Linear(HIDDEN, 1)
opt = torch.optim.Adam(list(rnn.parameters()) + list(readout.parameters()), lr=1e-2)
for step in range(400):
    x = torch.randn(64, 30, INPUTS)
    target = torch.zeros(64, 30, 1)
    target[:, DELAY:, 0] = x[:, :-DELAY, 0]
    y, _ = rnn(x)
    loss = ((readout(y) - target)[:, DELAY:] ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"delayed-recall training loss after 400 steps: {loss.item():.4f} (chance: 1.0)")

with torch.no_grad():
    x = torch.randn(1, BURN_IN + STEPS, INPUTS)  # one input sequence, (burn_in + steps) x dim
    _, h0 = rnn(torch.randn(1, 10, INPUTS))     # a state the trained network reaches
    np.save(os.path.join(out, "rnn_weight_hh.npy"), rnn.weight_hh_l0.numpy())          # W, 32 x 32
    np.save(os.path.join(out, "rnn_weight_ih.npy"), rnn.weight_ih_l0.numpy())          # U, 32 x 4
    np.save(os.path.join(out, "rnn_bias.npy"), (rnn.bias_ih_l0 + rnn.bias_hh_l0).numpy())  # b, (32,)
    np.save(os.path.join(out, "rnn_h0.npy"), h0[0, 0].numpy())                         # h_0, (32,)
    np.save(os.path.join(out, "rnn_inputs.npy"), x[0].numpy())                          # x, 120 x 4
    rho = max(abs(np.linalg.eigvals(rnn.weight_hh_l0.numpy().astype(np.float64))))
print(f"rho(weight_hh) = {rho:.6f}; wrote rnn_*.npy to {out}")
