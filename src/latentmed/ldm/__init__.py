"""DiNO-Diffusion (Jimenez-Perez et al. 2024): latent diffusion conditioned on frozen DINO tokens.

A VAE (diffusers ``AutoencoderKL``) maps images to latents; a ``UNet2DConditionModel``
denoises them while cross-attending to the global tokens (CLS, + registers) that a frozen
self-supervised ViT extracts from the same image. No labels are used for training; the
tokens are then reused to make synthetic data (:mod:`latentmed.ldm.synthesis`).

RUN folder layout (written by ``latentmed ldm train`` / :meth:`LatentDiffusion.save`,
read by :func:`load_ldm`)::

    RUN/vae/            AutoencoderKL.save_pretrained (config.json has scaling_factor)
    RUN/unet/           UNet2DConditionModel.save_pretrained (EMA weights; the best
                        reconstruction-FID checkpoint when selection was on)
    RUN/conditioner/    the ViT (transformers save_pretrained) + conditioner.json:
                        model_type, tokens ('global'|'all'), image_size, patch_size,
                        num_registers, use_pooler, num_tokens, width, mean, std, source, id
    RUN/ldm.json        schedule, prediction, scaling_factor, image_size, image_channels,
                        latent_channels, latent_size, cond_dropout, extra (steps, best_fid...)
    RUN/config.yaml     the run config (LDMRunConfig: model, objective, train, data, eval)
    RUN/checkpoint/, RUN/log.csv   the training loop's resumable state and log
    RUN/eval.csv, RUN/best/, RUN/best.json   reconstruction FID per evaluation, the best
                        EMA UNet and its step (checkpoint selection, ``train.eval_every``)

``load_ldm(RUN)`` returns a :class:`LatentDiffusion` with ``.vae``, ``.unet``,
``.conditioner``, ``.schedule``, ``.prediction``, ``.scaling_factor``,
``.encode_images(x)`` (images [-1, 1] -> scaled latents), ``.decode_latents(z)``,
``.condition(x)`` (tokens [B, N, D]) and ``.sample(tokens, steps, guidance)``.
``tiny_ldm().save(RUN)`` writes an untrained tiny RUN (tests). The UNet's timestep is ``1000 t`` for the continuous ``t`` in [0, 1] of
:mod:`latentmed.diffusion`.
"""

from latentmed.ldm.conditioner import DinoConditioner, PCAConditioner, load_conditioner
from latentmed.ldm.model import (LDMConfig, LatentDiffusion, build_unet, build_vae, check_token_width, load_ldm,
                                 load_vae, tiny_ldm)

__all__ = ["DinoConditioner", "LDMConfig", "PCAConditioner", "LatentDiffusion", "build_unet", "build_vae", "check_token_width",
           "load_conditioner", "load_ldm", "load_vae", "tiny_ldm"]
