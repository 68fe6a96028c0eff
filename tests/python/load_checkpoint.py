"""Loads a flowmatch checkpoint in PyTorch and prints v(x, t) for given points.

Usage: python load_checkpoint.py MODEL.safetensors X0 X1 ... T
The network is rebuilt from the header with plain torch.nn, which is the recipe
README.md documents; the test compares these numbers with ours.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

ACTIVATIONS = {"gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}


def build(path):
    with safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    embed = config["time_embedding"]
    width = 1 if embed["kind"] == "raw" else 2 * embed["frequencies"]
    sizes = [config["dim"] + width] + [config["hidden"]] * config["layers"] + [config["dim"]]
    modules = []
    for i in range(len(sizes) - 1):
        modules.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            modules.append(ACTIVATIONS[config["activation"]]())
    net = torch.nn.Sequential(*modules)
    dtype = torch.float64 if config["precision"] == "f64" else torch.float32
    net.load_state_dict(load_file(path))
    return net.to(dtype), config, dtype


def time_features(t, embed):
    if embed["kind"] == "raw":
        return t
    scales = torch.pi * 2.0 ** torch.arange(embed["frequencies"], dtype=t.dtype)
    angles = t * scales
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def main():
    path, *numbers = sys.argv[1:]
    net, config, dtype = build(path)
    x = torch.tensor([float(v) for v in numbers[:-1]], dtype=dtype).view(-1, config["dim"])
    t = torch.full((x.shape[0], 1), float(numbers[-1]), dtype=dtype)
    with torch.no_grad():
        v = net(torch.cat([x, time_features(t, config["time_embedding"])], dim=1))
    print(" ".join(f"{value:.9e}" for value in v.flatten().tolist()))


if __name__ == "__main__":
    main()
