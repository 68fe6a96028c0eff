"""Log-densities under a flow-matching checkpoint, written the way a PyTorch user would:
eager mode, nn.Sequential loaded from our safetensors file, the exact divergence by
autograd (one backward pass per dimension), and dopri5 with the same tableau, error
norm and step controller as flow-ode's, so both sides take the same steps.
`flowmatch bench` runs it beside ours on the same points with the same thread count.

Prints one JSON object: seconds, nfe, and the mean log-density (a cross-check).
"""
import argparse
import json
import math
import time

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
C = [0, 0.2, 0.3, 0.8, 8 / 9, 1, 1]
E = [35 / 384 - 5179 / 57600, 0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640,
     -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40]


def load(path):
    with safe_open(path, "pt") as f:
        cfg = json.loads(f.metadata()["config"])
    act = {"gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
       "selu": torch.nn.SELU}[cfg["activation"]]
    sizes = [cfg["dim"] + 1] + [cfg["hidden"]] * cfg["layers"] + [cfg["dim"]]
    layers = []
    for i in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[i], sizes[i + 1])] + ([act()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers)
    net.load_state_dict(load_file(path))
    return net, cfg["dim"]


def augmented(net, dim):
    """(x, l) -> (v(x, t), div v(x, t)), the divergence by one backward pass per dimension."""
    def field(state, t):
        with torch.enable_grad():
            x = state[:, :dim].detach().requires_grad_(True)
            v = net(torch.cat([x, torch.full((x.shape[0], 1), t)], dim=1))
            div = torch.zeros(x.shape[0])
            for i in range(dim):
                div += torch.autograd.grad(v[:, i].sum(), x, retain_graph=i + 1 < dim)[0][:, i]
        return torch.cat([v.detach(), div[:, None]], dim=1)
    return field


def dopri5(field, x, start, end, rtol, atol):
    span = end - start
    direction = math.copysign(1.0, span)
    t, dt = start, span / 10
    k0 = field(x, t)
    nfe = 1
    while (end - t) * direction > 1e-12 * abs(span):
        if (t + dt - end) * direction > 0:
            dt = end - t
        ks = [k0]
        for row, c in zip(A[1:], C[1:]):
            xi = x + dt * sum(a * k for a, k in zip(row, ks) if a != 0)
            ks.append(field(xi, t + c * dt))
            nfe += 1
        x_new = x + dt * sum(a * k for a, k in zip(A[6], ks) if a != 0)
        error = dt * sum(e * k for e, k in zip(E, ks) if e != 0)
        scale = atol + rtol * torch.maximum(x.abs(), x_new.abs())
        ratio = ((error / scale) ** 2).mean().sqrt().item()
        if ratio <= 1:
            t += dt
            k0 = ks[6]
            x = x_new
        factor = 10.0 if ratio == 0 else min(max(0.9 * ratio ** -0.2, 0.2), 10.0)
        dt *= factor
    return x, nfe


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--points", required=True, help=".npy of float32 points")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, dim = load(args.model)
    points = torch.from_numpy(np.load(args.points).astype(np.float32))
    field = augmented(net, dim)
    start = torch.cat([points, torch.zeros(points.shape[0], 1)], dim=1)
    clock = time.perf_counter()
    end, nfe = dopri5(field, start, 1.0, 0.0, args.tolerance, args.tolerance)
    latents, change = end[:, :dim], end[:, dim]
    log_prob = -0.5 * (latents ** 2).sum(1) - dim * 0.5 * math.log(2 * math.pi) + change
    seconds = time.perf_counter() - clock
    print(json.dumps({"seconds": seconds, "nfe": nfe, "mean_log_prob": log_prob.mean().item(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
