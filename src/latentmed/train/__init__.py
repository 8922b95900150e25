"""The shared training loop (accelerate), EMA, atomic resumable checkpoints and run logs."""

from latentmed.train.config import TrainConfig
from latentmed.train.ema import EMA
from latentmed.train.loop import StepBatchSampler, TrainResult, train, unwrap
from latentmed.train.objective import EvalFn, LossOutput, Objective, batch_images
from latentmed.train.result import RunResult

__all__ = ["EMA", "EvalFn", "LossOutput", "Objective", "RunResult", "StepBatchSampler", "TrainConfig", "TrainResult",
           "batch_images", "train", "unwrap"]
