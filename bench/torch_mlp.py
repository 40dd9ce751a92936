"""PyTorch CPU reference: the same network, loss, optimizer and batches (the
784-128-64-10 MLP, or LeNet-5 as ``nodenet.architectures.LENET5`` builds it)."""

from __future__ import annotations

import time


def network(name: str):
    """The ``"mlp"`` or the ``"lenet5"`` net, on flat (n, 784) inputs."""
    from torch import nn

    if name == "lenet5":
        return nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )
    return nn.Sequential(
        nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def train(x, y, x_test, y_test, epochs, batch_size, seed, on_epoch, threads, net="mlp"):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = network(net)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), batch_size):
            rows = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt[rows]), yt[rows]).backward()
            opt.step()
        on_epoch(time.perf_counter() - start)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    return float((predicted == y_test).mean())
