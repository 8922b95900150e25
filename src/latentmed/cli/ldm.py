"""`latentmed ldm` commands (DiNO-Diffusion)."""

from __future__ import annotations

from pathlib import Path

import typer

from latentmed.cli._common import console, friendly_errors, given_options

app = typer.Typer(help="DiNO-Diffusion: latent diffusion conditioned on frozen DINO tokens; synthetic data.",
                  no_args_is_help=True)


@app.command("train-vae")
@friendly_errors
def train_vae_cmd(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Image folder (labels.csv or images) or a folder of tar shards."),
    out: Path = typer.Option(..., "--out", help="Output folder; the AutoencoderKL goes to OUT/vae."),
    size: int = typer.Option(64, "--size", help="Image side after centre crop + resize.", min=1),
    latent_channels: int = typer.Option(4, "--latent-channels", min=1),
    channels: str = typer.Option("32,64,64", "--channels", help="VAE block widths (downsampling 2^(len-1))."),
    kl_weight: float = typer.Option(1e-6, "--kl-weight", min=0),
    steps: int = typer.Option(500, "--steps", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr", min=0),
    config: Path = typer.Option(None, "--config", help="YAML run config (sections: model, objective, train, data). "
                                "Options given here beat it."),
    overrides: list[str] = typer.Option(None, "--set", help="KEY=VALUE overrides, e.g. train.ema_decay=0.99."),
) -> None:
    """Train the VAE (reconstruction + KL); the latent scaling factor is computed from the data.

    Example: latentmed ldm train-vae data/chest --out runs/vae --size 64 --steps 500
    """
    from latentmed.config import merge_config
    from latentmed.ldm.training import VAERunConfig, train_vae

    options = given_options(ctx, {"latent_channels": "model.latent_channels", "channels": "model.block_out_channels",
                                  "kl_weight": "objective.kl_weight", "steps": "train.steps",
                                  "batch_size": "train.batch_size", "lr": "train.lr", "size": "data.size"})
    cfg = merge_config(VAERunConfig, config, overrides, {**options, "data.path": data})
    result = train_vae(cfg, out)
    console.print(f"VAE saved to {result.run_dir / 'vae'} (scaling factor {result.model.config.scaling_factor:.4f})")


@app.command("embed")
@friendly_errors
def embed_cmd(
    data: Path = typer.Argument(..., help="Image folder or shards."),
    out: Path = typer.Option(..., "--out", help="Cache file (.safetensors)."),
    conditioner: str = typer.Option(..., "--conditioner", help="Local ViT folder, or tiny|tiny-vit for tests."),
    tokens: str = typer.Option("global", "--tokens", help="global (CLS+registers) or all (with patch tokens)."),
    size: int = typer.Option(64, "--size", help="Image side (as in training).", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
) -> None:
    """Precompute the conditioning tokens of a data set (training re-reads them).

    Example: latentmed ldm embed data/chest --conditioner weights/dinov2-reg --out runs/emb.safetensors
    """
    from latentmed.ldm.training import embed_folder

    tok, source = embed_folder(data, out, conditioner, tokens=tokens, size=size, batch_size=batch_size, progress=True)
    console.print(f"{tuple(tok.shape)} tokens from {source} -> {out}")


@app.command("train")
@friendly_errors
def train_cmd(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Image folder or shards."),
    vae: Path = typer.Option(..., "--vae", help="VAE folder (from train-vae, or a local SD-compatible vae/)."),
    conditioner: str = typer.Option(..., "--conditioner", help="Local ViT folder, or tiny|tiny-vit for tests."),
    out: Path = typer.Option(..., "--out", help="RUN folder (vae/, unet/, conditioner/, ldm.json)."),
    tokens: str = typer.Option("global", "--tokens", help="global or all."),
    embeddings: Path = typer.Option(None, "--embeddings", help="Token cache from `ldm embed`."),
    heldout: Path = typer.Option(None, "--heldout", help="Held-out images for reconstruction-FID selection "
                                 "(eval.heldout; a validation split of the pool, never the test set)."),
    fid_every: int = typer.Option(0, "--fid-every", help="Evaluate reconstruction FID every N steps and keep the "
                                  "best checkpoint (train.eval_every; 0: off).", min=0),
    size: int = typer.Option(64, "--size", min=1), channels: str = typer.Option("32,64", "--channels"),
    prediction: str = typer.Option("eps", "--prediction", help="eps (paper) or v."),
    cond_dropout: float = typer.Option(0.1, "--cond-dropout", help="Condition dropout for guidance.", min=0, max=1),
    augment: bool = typer.Option(False, "--augment/--no-augment", help="Light augmentation (paper Sec. 3)."),
    steps: int = typer.Option(1000, "--steps", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    lr: float = typer.Option(2e-4, "--lr", min=0),
    config: Path = typer.Option(None, "--config", help="YAML run config (sections: model, objective, train, data, "
                                "eval). Options given here beat it."),
    overrides: list[str] = typer.Option(None, "--set", help="KEY=VALUE overrides, e.g. train.grad_accum=4."),
    recipe: str = typer.Option(None, "--recipe", help="Named settings: paper (constant lr 1e-4 after 1000 warm-up "
                               "steps, augmentation, discrete times). Beats --config; --set and options beat it."),
) -> None:
    """Train the token-conditioned UNet in the VAE's latent space.

    Example: latentmed ldm train data/chest --vae runs/vae --conditioner tiny --out runs/ldm --recipe paper
    """
    from latentmed.config import merge_config
    from latentmed.ldm.training import LDMRunConfig, ldm_recipe, train_ldm

    if recipe:
        overrides = [f"{k}={v}" for k, v in ldm_recipe(recipe).items()] + list(overrides or [])

    options = given_options(ctx, {"channels": "model.block_out_channels", "prediction": "objective.prediction",
                                  "cond_dropout": "objective.cond_dropout", "steps": "train.steps",
                                  "batch_size": "train.batch_size", "lr": "train.lr", "fid_every": "train.eval_every",
                                  "size": "data.size", "augment": "data.augment", "heldout": "eval.heldout"})
    cfg = merge_config(LDMRunConfig, config, overrides, {**options, "data.path": data})
    result = train_ldm(cfg, out, vae=vae, conditioner=conditioner, tokens=tokens, embeddings=embeddings)
    console.print(f"run saved to {result.run_dir} ({result.model.config.extra})")


@app.command("synthesize")
@friendly_errors
def synthesize_cmd(
    run: Path = typer.Argument(..., help="RUN folder from `ldm train`."),
    data: Path = typer.Option(..., "--data", help="Real images with labels.csv."),
    out: Path = typer.Option(..., "--out", help="Output folder (images/, labels.csv)."),
    labels: str = typer.Option("cardiomegaly,effusion,opacity", "--labels", help="Label columns of labels.csv."),
    strategy: str = typer.Option("reconstruction", "--strategy", help="reconstruction | interpolation."),
    ratio: float = typer.Option(5, "--ratio", help="Synthetic images per real image.", min=0),
    subset: int = typer.Option(None, "--subset", help="Label-balanced real subset size (default: all).", min=1),
    steps: int = typer.Option(50, "--steps", help="DDIM steps.", min=1),
    guidance: float = typer.Option(1.0, "--guidance", help="Classifier-free guidance scale.", min=0),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Write a real subset + synthetic images (labels.csv marks synthetic=1 and the parents).

    Example: latentmed ldm synthesize runs/ldm --data data/chest --strategy interpolation --ratio 5 --subset 100 --out syn/
    """
    from latentmed.cli._common import parse_list
    from latentmed.ldm import load_ldm
    from latentmed.ldm.synthesis import build_synthetic_dataset

    path = build_synthetic_dataset(load_ldm(run), data, out, parse_list(labels), strategy=strategy, ratio=ratio,
                                   subset=subset, steps=steps, guidance=guidance, seed=seed, progress=True)
    console.print(f"wrote {path}")


@app.command("augment-eval")
@friendly_errors
def augment_eval_cmd(
    run: Path = typer.Argument(..., help="RUN folder from `ldm train` (trained on --data, not on --test)."),
    data: Path = typer.Option(..., "--data", help="Real training pool with labels.csv."),
    test: Path = typer.Option(..., "--test", help="Held-out real test set with labels.csv."),
    out: Path = typer.Option(..., "--out", help="Report folder."),
    labels: str = typer.Option("cardiomegaly,effusion,opacity", "--labels"),
    subsets: str = typer.Option("50,200", "--subsets", help="Real data regimes (nested subset sizes)."),
    ratios: str = typer.Option("1,5", "--ratios", help="Synthetic:real ratios (the paper: 1,5,10,50)."),
    folds: int = typer.Option(5, "--folds", help="k-fold stratified cross-validation (0: --seeds subsets).", min=0),
    seeds: int = typer.Option(5, "--seeds", help="Subset seeds when --folds 0.", min=1),
    strategy: str = typer.Option("reconstruction", "--strategy", help="reconstruction | interpolation."),
    steps: int = typer.Option(20, "--steps", help="DDIM steps per synthetic image.", min=1),
    guidance: float = typer.Option(1.0, "--guidance", min=0),
    syn_only: bool = typer.Option(True, "--syn-only/--no-syn-only", help="Also train on synthetic images alone."),
    arch: str = typer.Option("small", "--arch", help="small (CPU CNN) or densenet121 (MONAI)."),
    classifier_size: int = typer.Option(32, "--classifier-size", min=1),
    epochs: int = typer.Option(15, "--epochs", help="Epochs (the maximum with --early-stopping).", min=1),
    min_steps: int = typer.Option(150, "--min-steps", help="Minimum classifier optimisation steps.", min=0),
    early_stopping: bool = typer.Option(False, "--early-stopping/--no-early-stopping", help="The paper's recipe: "
                                        "LR on plateau and early stopping on the validation AUC of a split."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", min=0.05, max=0.5,
                                       help="Validation split with --early-stopping."),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Classifier AUC with k-fold CV on real, real+synthetic and synthetic-only sets; memorisation check.

    Example (the paper's protocol): latentmed ldm augment-eval runs/ldm --data data/train --test data/test
    --ratios 1,5,10,50 --arch densenet121 --early-stopping --epochs 150 --out report/
    """
    from latentmed.cli._common import parse_list
    from latentmed.ldm import load_ldm
    from latentmed.ldm.augment import (AugmentProtocol, ClassifierSpec, SynthesisSpec, augment_eval,
                                       write_augment_report)

    protocol = AugmentProtocol(parse_list(subsets, int), parse_list(ratios, int), folds, seeds, seed, syn_only)
    clf = ClassifierSpec(arch, classifier_size, epochs, min_steps, early_stopping, val_fraction)
    res = augment_eval(load_ldm(run), data, test, parse_list(labels), protocol, classifier=clf,
                       synthesis=SynthesisSpec(strategy, steps, guidance), progress=console.print)
    write_augment_report(res, out)
    console.print((out / "table.md").read_text())
    console.print("memorisation: " + ", ".join(f"{k} {v:.3g}" for k, v in res.extra["memorisation"].items()
                                               if not isinstance(v, list)))


@app.command("grid")
@friendly_errors
def grid_cmd(
    run: Path = typer.Argument(..., help="RUN folder."),
    data: Path = typer.Option(..., "--data", help="Images to reconstruct / interpolate."),
    out: Path = typer.Option(..., "--out", help="Output folder for reconstruction.png and interpolation.png."),
    n: int = typer.Option(6, "--n", help="Number of source images (pairs for interpolation).", min=1),
    steps: int = typer.Option(50, "--steps", min=1), guidance: float = typer.Option(1.0, "--guidance", min=0),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Reconstruction (variations from an image's own tokens) and interpolation grids.

    Example: latentmed ldm grid runs/ldm --data data/chest --out runs/ldm/grids
    """
    from latentmed.ldm.synthesis import write_grids

    rec, interp = write_grids(run, data, out, n=n, steps=steps, guidance=guidance, seed=seed)
    console.print(f"wrote {rec} and {interp}")
