"""Run by tests/test_train_loop.py under `torchrun --nproc_per_node 2` (gloo on CPU)."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from latentmed.train import TrainConfig, train


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(4, generator=g)


def loss_fn(model, x, step):
    return (model(x) - x.sum(1, keepdim=True)).pow(2).mean(1)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    cfg = TrainConfig(steps=5, batch_size=4, lr=1e-2, log_every=1, checkpoint_every=0, progress=False)
    result = train(model, loss_fn, Data(), cfg, out, save_model=False)
    flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        spread = max((g - gathered[0]).abs().max().item() for g in gathered)
        moved = (flat - torch.cat([p.flatten() for p in
                                   torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                                       torch.nn.Linear(16, 1)).parameters()])).abs().max().item()
        (out / "ddp.txt").write_text(f"{dist.get_world_size()} {spread} {moved}\n")
