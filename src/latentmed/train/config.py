"""Training hyper-parameters shared by every model (DiffAE defaults where they apply)."""

from __future__ import annotations

from dataclasses import dataclass

from latentmed.errors import LatentmedError
from latentmed.train.accel import precision_name


@dataclass
class TrainConfig:
    """One training run. DiffAE: Adam lr 1e-4, EMA 0.9999, grad-clip 1 (Preechakul et al. 2022, Table 7)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    ema_decay: float = 0.9999
    grad_clip: float = 1.0
    grad_accum: int = 1
    # no | bf16 (CPU and GPU autocast) | fp16 (GPU only, loss scaling) | auto (bf16 on a CPU with
    # native bf16, else no; the DAE runs' default, see latentmed.dae.DAETrainConfig)
    mixed_precision: str = "no"
    # torch.compile the model's forward (the denoiser step); off: on the CPU it paid back its compile
    # time only after ~5000 tiny steps (benchmarks/README.md)
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    preview_every: int = 0
    # checkpoint selection: eval_fn(ema_model, step) every eval_every steps (0: never); the EMA model
    # with the best select_metric (min or max; "" = only log eval.csv) is kept in RUN/best/
    eval_every: int = 0
    select_metric: str = ""
    select_mode: str = "min"
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        precision_name(self.mixed_precision)
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise LatentmedError(f"train.{name} must be >= 1, got {getattr(self, name)}.")
        if self.select_mode not in ("min", "max"):
            raise LatentmedError(f"train.select_mode must be 'min' or 'max', got {self.select_mode!r}.")
        if self.eval_every < 0:
            raise LatentmedError(f"train.eval_every must be >= 0 (0: no evaluation), got {self.eval_every}.")
        if not 0 <= self.ema_decay < 1:
            raise LatentmedError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}.")
