"""Train the small digits classifier shipped in examples/models/ (seeded, seconds on a CPU).

A 64-32-32-10 ReLU MLP on scikit-learn's 8x8 digits (pixels scaled to [0, 1]),
exported to ONNX. Needs torch and scikit-learn; the committed
``examples/models/digits_mlp.onnx`` was made by this script.

    python examples/train_digits.py [--out examples/models/digits_mlp.onnx]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from sklearn.datasets import load_digits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "models" / "digits_mlp.onnx"))
    ap.add_argument("--epochs", type=int, default=200)
    args = ap.parse_args()

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    tr, te = perm[:1400], perm[1400:]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(args.epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt[tr]), yt[tr])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt[te]).argmax(1) == yt[te]).float().mean().item()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (xt[:1],),
        args.out,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
        opset_version=17,
    )
    print(f"test accuracy {acc:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
