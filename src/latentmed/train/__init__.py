"""The shared training loop (accelerate), EMA, atomic resumable checkpoints and run logs."""

from latentmed.train.config import TrainConfig
from latentmed.train.ema import EMA
from latentmed.train.loop import StepBatchSampler, TrainResult, train, unwrap

__all__ = ["EMA", "StepBatchSampler", "TrainConfig", "TrainResult", "train", "unwrap"]
