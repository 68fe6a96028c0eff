"""Loads a flowmatch checkpoint in PyTorch and prints v(x, t) for given points.

Usage: python load_checkpoint.py MODEL.safetensors X0 X1 ... T [--condition K,V,...]
The network is rebuilt from the header with plain torch.nn, which is the recipe
README.md documents; the test compares these numbers with ours. A conditional
model without --condition sees its learned null condition.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

ACTIVATIONS = {
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
    "relu": torch.nn.ReLU,
    "tanh": torch.nn.Tanh,
    "selu": torch.nn.SELU,
}


def build(path):
    with safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    # Format 2 names the architecture; format 1 files are all MLPs.
    if config.get("architecture", "mlp") != "mlp":
        raise SystemExit(f"{path}: a {config['architecture']} network, not the MLP this recipe rebuilds")
    embed = config["time_embedding"]
    width = 1 if embed["kind"] == "raw" else 2 * embed["frequencies"]
    sizes = [config["dim"] + width + condition_width(config)] + [config["hidden"]] * config["layers"] + [config["dim"]]
    modules = []
    for i in range(len(sizes) - 1):
        modules.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            modules.append(ACTIVATIONS[config["activation"]]())
    net = torch.nn.Sequential(*modules)
    dtype = torch.float64 if config["precision"] == "f64" else torch.float32
    net.load_state_dict(load_file(path))
    return net.to(dtype), config, dtype


def condition_width(config):
    shape = config.get("condition", {"classes": 0, "values": 0})
    classes, values = shape["classes"], shape["values"]
    return (classes + 1 if classes else 0) + (values + 1 if values else 0)


def condition_features(rows, config, given, dtype):
    """A one-hot label over classes + 1 slots (the last: null), then the values and a 1 (all 0: null)."""
    shape = config.get("condition", {"classes": 0, "values": 0})
    classes, values = shape["classes"], shape["values"]
    parts = []
    if classes:
        one_hot = torch.zeros(rows, classes + 1, dtype=dtype)
        one_hot[:, int(given[0]) if given else classes] = 1.0
        parts.append(one_hot)
    if values:
        row = given[1 if classes else 0:] + [1.0] if given else [0.0] * (values + 1)
        parts.append(torch.tensor(row, dtype=dtype).expand(rows, -1))
    return parts


def time_features(t, embed):
    if embed["kind"] == "raw":
        return t
    scales = torch.pi * 2.0 ** torch.arange(embed["frequencies"], dtype=t.dtype)
    angles = t * scales
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def main():
    arguments = sys.argv[1:]
    given = None
    if "--condition" in arguments:
        at = arguments.index("--condition")
        given = [float(v) for v in arguments[at + 1].split(",")]
        del arguments[at : at + 2]
    path, *numbers = arguments
    net, config, dtype = build(path)
    x = torch.tensor([float(v) for v in numbers[:-1]], dtype=dtype).view(-1, config["dim"])
    t = torch.full((x.shape[0], 1), float(numbers[-1]), dtype=dtype)
    features = [x, time_features(t, config["time_embedding"])] + condition_features(x.shape[0], config, given, dtype)
    with torch.no_grad():
        v = net(torch.cat(features, dim=1))
    print(" ".join(f"{value:.9e}" for value in v.flatten().tolist()))


if __name__ == "__main__":
    main()
