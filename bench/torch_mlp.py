"""PyTorch CPU reference: the same network, loss, optimizer and batches."""

from __future__ import annotations

import time


def train(x, y, x_test, y_test, epochs, batch_size, seed, on_epoch, threads):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
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
