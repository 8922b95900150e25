"""DAE training objectives: ``objective(model, batch, step) -> loss[B]`` over images in [-1, 1]
(:class:`latentmed.train.Objective`).

- ``baseline`` (Preechakul et al. 2022): eps-prediction, linear-beta schedule, t uniform on {1..T}/T.
- ``one-phase``: any prediction type and schedule, t ~ U(0, 1].
- ``two-phase`` (Khungurn et al.): for the first ``phase1_fraction`` of the steps t = 1 with
  v-prediction, where x_t is pure noise and v = -x0, i.e. a plain autoencoder regressing -x0;
  then v-prediction with the ``sc-4`` schedule and t ~ U(0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from latentmed.diffusion import check_prediction, diffusion_loss, get_schedule, sample_times
from latentmed.errors import LatentmedError
from latentmed.train.objective import batch_images

OBJECTIVES = ("baseline", "one-phase", "two-phase")


@dataclass
class ObjectiveConfig:
    """Which objective, and its prediction type / schedule (empty = the objective's default)."""

    name: str = "two-phase"
    prediction: str = ""
    schedule: str = ""
    phase1_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise LatentmedError(f"unknown objective {self.name!r}. Expected one of: {', '.join(OBJECTIVES)}.")
        if self.name == "baseline" and (self.prediction not in ("", "eps") or self.schedule not in ("", "linear")):
            raise LatentmedError("objective 'baseline' is eps-prediction with the linear schedule; use 'one-phase' "
                                 "for another prediction type or schedule.")
        if not 0 <= self.phase1_fraction < 1:
            raise LatentmedError(f"objective.phase1_fraction must be in [0, 1), got {self.phase1_fraction}.")
        if self.prediction:
            check_prediction(self.prediction)
        if self.schedule:
            get_schedule(self.schedule)

    @property
    def resolved_prediction(self) -> str:
        return self.prediction or {"baseline": "eps", "one-phase": "v", "two-phase": "v"}[self.name]

    @property
    def resolved_schedule(self) -> str:
        return self.schedule or {"baseline": "linear", "one-phase": "sc-4", "two-phase": "sc-4"}[self.name]


class DAEObjective:
    """``(model, batch, step) -> (loss[B], {"phase": 1 or 2})``; the step selects the two-phase phase."""

    def __init__(self, config: ObjectiveConfig, total_steps: int):
        self.config = config
        self.schedule = get_schedule(config.resolved_schedule)
        self.prediction = config.resolved_prediction
        self.phase1_steps = int(round(config.phase1_fraction * total_steps)) if config.name == "two-phase" else 0

    def phase(self, step: int) -> int:
        """1 (t = 1, v = -x0: a plain autoencoder) for the first ``phase1_steps`` steps, then 2."""
        return 1 if step < self.phase1_steps else 2

    def __call__(self, model, batch, step: int):
        x0 = batch_images(batch)
        b = x0.shape[0]
        phase = self.phase(step)
        if phase == 1:
            t = sample_times(b, "one", device=x0.device)
            prediction = "v"
        else:
            kind = "discrete" if self.config.name == "baseline" else "uniform"
            t = sample_times(b, kind, device=x0.device)
            prediction = self.prediction
        loss = diffusion_loss(lambda x_t, tt, c: model(x_t, tt, x_start=x0), x0, t, self.schedule, prediction)
        return loss, {"phase": float(phase)}


def latent_loss(schedule_name: str, prediction: str):
    """``(model, batch, step) -> loss[B]`` of the latent DDIM on batches of normalised z (t uniform on {1..T}/T)."""
    schedule = get_schedule(schedule_name)

    def loss_fn(model, batch, step: int):
        z = batch_images(batch)
        t = sample_times(z.shape[0], "discrete", device=z.device)
        return diffusion_loss(lambda z_t, tt, c: model(z_t, tt), z, t, schedule, prediction)

    return loss_fn
