#!/usr/bin/env python3
"""Builds the training-step parity fixture (tests/fixtures/step_parity_w16_572.safetensors).

One whole training step of the PyTorch twin of our network (../shared/bench/torch_unet.py)
at width 16, depth 4, 1 input channel, 2 classes, on one 572x572 tile (output 388x388):
the plain forward `net(x)` (no dropout), the paper's weighted loss
`(F.cross_entropy(net(x), y, reduction="none") * w).mean()` and its backward. The fixture
stores only the loss (`loss`, shape [1]) and every parameter's gradient under OUR parameter
names (`grad.<name>`), as float32; the weights, the input tile, the labels and the weight
map are NOT stored: they come from the counter-based generator below, which
crates/unet-train/tests/step_parity.rs re-implements bit for bit. That test must reproduce
the loss and every gradient to 1e-4 (relative to each tensor's largest |gradient|).

The stored step is computed in float64 (from the float32 weights and tile), because float32
PyTorch is not itself within 1e-4 of the exact step at this size: of the forward's ~31M ReLU
and max-pool decisions a few sit within float32 rounding of a tie, each one that flips moves
one pixel's gradient, and one such flip (a pre-activation of -1.4e-7 next to max |z| 7.8 in
down.1.conv2) puts down.1.conv2.weight 7e-4 off. Run in float64 with float32 PyTorch's
decisions forced, the twin reproduces float32 PyTorch to 2e-5: the flips explain all of it. The
metadata records float32 PyTorch's per-tensor distance and its flipped decisions;
`--reference float32` stores the float32 step instead.

The generator (all arithmetic in IEEE float64 / wrapping uint64, rounded to float32 once):

    splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
                   z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31
    key(name)    = splitmix64(fnv1a64(name as UTF-8))
    uniform(name, i) = (splitmix64(key(name) + i) >> 40) * 2^-23 - 1     in [-1, 1), exact in f32
    weight[i]    = f32(uniform(name, i) * sqrt(6 / fan_in))   (He variance 2/fan_in; fan_in =
                   in * kh * kw for convs, `in` for the 2x2 stride-2 up-convolutions)
    bias[i]      = f32(uniform(name, i) * 0.1)
    cells        : k = 0..15, u = uniform("cells", .): cy = 286 + 250 u[4k], cx = 286 + 250 u[4k+1],
                   r = 40 + 15 u[4k+2]  (u[4k+3] unused)
    s(row, col)  = sum_k 1 / (1 + q * q), q = ((row - cy)^2 + (col - cx)^2) / r^2   (k in order, from 0.0)
    input        = f32((s - 0.5) + 0.3 * uniform("input", row * 572 + col))     [1, 1, 572, 572]
    on the output (i, j) <-> input (i + 92, j + 92), with t = (s - 0.5) / 0.05:
    label        = 1 if s > 0.5 else 0                                          [1, 388, 388]
    weight map   = f32(1 + 10 / (1 + t * t))   in (1, 11], high on the label borders

    bench/.venv/bin/python tests/reference/make_step_fixture.py [--shared ../shared] [--reference float32]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

WIDTH, DEPTH, CIN, CLASSES, TILE, OUT = 16, 4, 1, 2, 572, 388
BORDER = (TILE - OUT) // 2
CELLS = 16
MASK = (1 << 64) - 1

GENERATOR = (
    "uniform(name, i) = (splitmix64(splitmix64(fnv1a64(name)) + i) >> 40) * 2^-23 - 1 (wrapping u64, f64); "
    "weights f32(u * sqrt(6/fan_in)) (fan_in = in*kh*kw, `in` for up-convs), biases f32(u * 0.1), keyed by our "
    "parameter names; 16 cells from uniform('cells'): cy = 286 + 250 u[4k], cx = 286 + 250 u[4k+1], "
    "r = 40 + 15 u[4k+2]; s = sum_k 1/(1 + q*q), q = ((row-cy)^2 + (col-cx)^2)/r^2; "
    "input = f32(s - 0.5 + 0.3 uniform('input', row*572 + col)); on the output (input offset 92): "
    "label = s > 0.5, weight map = f32(1 + 10/(1 + ((s - 0.5)/0.05)^2)); see make_step_fixture.py"
)


def splitmix64(z):
    """SplitMix64 finaliser of a uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def uniform(name, n):
    """`n` float64 values in [-1, 1), each exactly representable in float32."""
    with np.errstate(over="ignore"):
        key = splitmix64(np.array([fnv1a64(name)], dtype=np.uint64))[0]
        h = splitmix64(np.arange(n, dtype=np.uint64) + key)
    return (h >> np.uint64(40)).astype(np.float64) * 2.0**-23 - 1.0


def our_name(key):
    """The twin's state_dict key -> our parameter name (see crates/unet-nn/src/params.rs)."""
    parts = key.split(".")
    if parts[0] == "down":  # down.{level}.{0|2}.{weight|bias}
        return f"down.{parts[1]}.{ {'0': 'conv1', '2': 'conv2'}[parts[2]] }.{parts[3]}"
    if parts[0] == "ups":  # ups.{i}.{weight|bias}
        return f"upconv.{parts[1]}.{parts[2]}"
    if parts[0] == "upconv":  # upconv.{i}.{0|2}.{weight|bias}
        return f"up.{parts[1]}.{ {'0': 'conv1', '2': 'conv2'}[parts[2]] }.{parts[3]}"
    if parts[0] == "head":
        return f"head.{parts[1]}"
    raise KeyError(key)


def param_values(name, shape):
    """The generated value of our parameter `name` (float32 array of `shape`)."""
    n = int(np.prod(shape))
    u = uniform(name, n)
    if name.endswith(".bias"):
        scale = 0.1
    else:
        fan_in = shape[0] if name.startswith("upconv.") else int(np.prod(shape[1:]))
        scale = np.sqrt(6.0 / fan_in)
    return (u * scale).astype(np.float32).reshape(shape)


def smooth():
    """The smooth field s on the input tile (float64 [TILE, TILE])."""
    u = uniform("cells", 4 * CELLS)
    row = np.arange(TILE, dtype=np.float64)[:, None]
    col = np.arange(TILE, dtype=np.float64)[None, :]
    s = np.zeros((TILE, TILE))
    for k in range(CELLS):
        cy, cx, r = 286.0 + 250.0 * u[4 * k], 286.0 + 250.0 * u[4 * k + 1], 40.0 + 15.0 * u[4 * k + 2]
        dy, dx = row - cy, col - cx
        q = (dy * dy + dx * dx) / (r * r)
        s = s + 1.0 / (1.0 + q * q)
    return s


def sample():
    """Input [1, 1, TILE, TILE] f32, labels [1, OUT, OUT] int64, weight map [1, OUT, OUT] f32."""
    s = smooth()
    x = ((s - 0.5) + 0.3 * uniform("input", TILE * TILE).reshape(TILE, TILE)).astype(np.float32)
    so = s[BORDER:BORDER + OUT, BORDER:BORDER + OUT]
    labels = (so > 0.5).astype(np.int64)
    t = (so - 0.5) / 0.05
    w = (1.0 + 10.0 / (1.0 + t * t)).astype(np.float32)
    return x[None, None], labels[None], w[None]


def step(net, x, y, w):
    """Loss and gradients (by our names) of one training step; dtype follows the inputs."""
    net.zero_grad()
    loss = (F.cross_entropy(net(x), y, reduction="none") * w).mean()
    loss.backward()
    return loss.detach(), {our_name(k): p.grad.detach().clone() for k, p in net.named_parameters()}


def decisions(net, x):
    """The forward's discrete choices: per ReLU, the sign mask of its input; per max-pool of
    the contracting path, the argmax of each 2x2 window (restricted to windows whose max > 0:
    ties among ReLU zeros carry no gradient)."""
    found, hooks = {}, []
    for name, mod in net.named_modules():
        if isinstance(mod, torch.nn.ReLU):
            hooks.append(mod.register_forward_hook(lambda m, i, o, n=name: found.__setitem__(n, i[0].detach())))
    inplace = [(m, m.inplace) for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    for m, _ in inplace:
        m.inplace = False
    with torch.no_grad():
        net(x)
    for m, flag in inplace:
        m.inplace = flag
    for h in hooks:
        h.remove()
    out = {}
    for name, z in found.items():
        out[f"relu {name}"] = (z > 0, None)
        if name.startswith("down.") and name.endswith(".3") and int(name.split(".")[1]) < DEPTH:
            y, idx = F.max_pool2d(F.relu(z), 2, return_indices=True)
            out[f"pool {name}"] = (idx, y > 0)
    return out


def flips(a, b):
    """Decisions where two runs differ (b's mask of relevant windows for the pools)."""
    count = {}
    for key, (da, _) in a.items():
        db, relevant = b[key]
        diff = da != db
        if relevant is not None:
            diff = diff & relevant
        if diff.any():
            count[key] = int(diff.sum())
    return count


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--shared", default=os.path.join(here, "..", "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "step_parity_w16_572.safetensors"))
    ap.add_argument("--reference", choices=["float64", "float32"], default="float64",
                    help="precision of the stored step (float32 PyTorch is itself up to ~7e-4 off here)")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.shared, "bench"))
    from torch_unet import UNet  # the PyTorch twin

    def twin(dtype):
        net = UNet(cin=CIN, classes=CLASSES, width=WIDTH, depth=DEPTH).to(dtype)  # no dropout in the twin
        net.load_state_dict({k: v.to(dtype) for k, v in state.items()})
        return net

    shapes = UNet(cin=CIN, classes=CLASSES, width=WIDTH, depth=DEPTH).state_dict()
    state = {k: torch.from_numpy(param_values(our_name(k), list(v.shape))) for k, v in shapes.items()}
    xs, ys, ws = sample()
    x, y, w = torch.from_numpy(xs), torch.from_numpy(ys), torch.from_numpy(ws)
    net32, net64 = twin(torch.float32), twin(torch.float64)
    loss32, grads32 = step(net32, x, y, w)
    loss64, grads64 = step(net64, x.double(), y, w.double())

    # How far float32 PyTorch is from float64, per tensor, and the forward decisions
    # (ReLU signs, max-pool argmaxes) it takes differently: at a 572 tile a few of the
    # ~10M decisions sit within float32 rounding of a tie, and each one that flips moves
    # one pixel's gradient.
    f32_rel = {n: float((g.double() - grads64[n]).abs().max() / grads64[n].abs().max()) for n, g in grads32.items()}
    f32_loss = abs(loss32.item() - loss64.item()) / abs(loss64.item())
    f32_flips = flips(decisions(net32, x), decisions(net64, x.double()))

    loss, grads = (loss64, grads64) if a.reference == "float64" else (loss32, grads32)
    tensors = {"loss": loss.reshape(1).float().contiguous()}
    for name, g in grads.items():
        tensors[f"grad.{name}"] = g.float().contiguous()
    checks = {
        "input_sum": float(xs.astype(np.float64).sum()),
        "labels_sum": int(ys.sum()),
        "weight_map_sum": float(ws.astype(np.float64).sum()),
        "params_abs_sum": float(sum(np.abs(v.numpy().astype(np.float64)).sum() for v in state.values())),
    }
    config = {"in_channels": CIN, "classes": CLASSES, "depth": DEPTH, "width": WIDTH,
              "padding": "valid", "batch_norm": False, "dropout": 0.5}
    meta = {
        "config": json.dumps(config),
        "tile": str(TILE),
        "output": str(OUT),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "made_by": "tests/reference/make_step_fixture.py",
        "reference": a.reference,
        "step": f"PyTorch twin in {a.reference} (weights, input and weight map are the float32 values "
                "of the generator), plain forward net(x) (no dropout), "
                "loss = (F.cross_entropy(net(x), y, reduction='none') * w).mean(), loss.backward(); "
                "stored as float32",
        "generator": GENERATOR,
        "checks": json.dumps(checks),
        "torch_f32_vs_f64": json.dumps({
            "loss_rel": float(f"{f32_loss:.3g}"),
            "grad_worst_rel_to_max": {n: float(f"{v:.3g}") for n, v in f32_rel.items()},
            "decision_flips": f32_flips,
        }),
    }
    save_file(tensors, a.out, metadata=meta)
    os.chmod(a.out, 0o644)
    n = sum(g.numel() for g in grads.values())
    worst = max(f32_rel, key=f32_rel.get)
    print(f"{a.out}: {a.reference} reference, loss {loss.item():.8f}, {len(grads)} gradients ({n} values), "
          f"{os.path.getsize(a.out)} bytes; labels {ys.mean():.3f} foreground, weight map mean {ws.mean():.3f}")
    print(f"float32 PyTorch vs float64: loss {f32_loss:.2e}, worst gradient {worst} {f32_rel[worst]:.2e}, "
          f"{len([v for v in f32_rel.values() if v > 1e-4])} tensors above 1e-4; decision flips {f32_flips}")
    print(json.dumps(checks))


if __name__ == "__main__":
    main()
