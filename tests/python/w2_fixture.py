"""Writes tests/fixtures/w2_pot.json: point sets and their exact squared 2-Wasserstein
distance from POT's ot.emd2 (uniform weights, squared Euclidean cost).

Regenerate with: python tests/python/w2_fixture.py  (needs numpy and POT)
"""
import json
import pathlib

import numpy as np
import ot

rng = np.random.default_rng(20261129)
cases = []
for n, d in [(7, 2), (200, 2), (150, 3)]:
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) * 0.7 + 0.5
    # Round to float32 so both sides start from the same numbers.
    a = a.astype(np.float32).astype(np.float64)
    b = b.astype(np.float32).astype(np.float64)
    cost = ot.dist(a, b, metric="sqeuclidean")
    w = np.full(n, 1.0 / n)
    cases.append({"a": a.tolist(), "b": b.tolist(), "emd2": float(ot.emd2(w, w, cost))})
# Far transport above the dense solver's size (800 points), so the sparse, certified solver
# runs: torchcfm's 8gaussians against torchdyn's moons (C2OT's pair), 1 200 points each.
n = 1200
centres = 5 * np.array([(np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)) for k in range(8)])
a = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 2)) * 0.1 ** 0.25
arcs = np.linspace(0, np.pi, n // 2)
moons = np.concatenate([np.stack([np.cos(arcs), np.sin(arcs)], 1), np.stack([1 - np.cos(arcs), 0.5 - np.sin(arcs)], 1)])
b = (moons + rng.random((n, 1)) * 0.2) * 3 - 1
a = a.astype(np.float32).astype(np.float64)
b = b.astype(np.float32).astype(np.float64)
w = np.full(n, 1.0 / n)
cases.append({"a": a.tolist(), "b": b.tolist(), "emd2": float(ot.emd2(w, w, ot.dist(a, b, metric="sqeuclidean")))})
out = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "w2_pot.json"
out.write_text(json.dumps({"source": "POT ot.emd2, uniform weights, squared Euclidean", "cases": cases}))
print(out, [c["emd2"] for c in cases])
