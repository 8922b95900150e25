"""ADM-style UNet with DiffAE conditioning and the DiffAE semantic encoder, in 2D or 3D.

Architecture follows Dhariwal & Nichol (2021) as used by DiffAE (Preechakul et al. 2022):
ResBlocks with time (AdaGN scale/shift) and z_sem (scale) conditioning, self-attention at
chosen resolutions, strided-conv down / nearest+conv up sampling, zero-initialised outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from latentmed.errors import LatentmedError
from latentmed.nn.layers import (AttentionBlock, Downsample, ResBlock, Upsample, conv_nd, group_norm,
                                 timestep_embedding, zero_module)


@dataclass
class UNetConfig:
    """Denoiser UNet ``net(x_t, t, z_sem)`` (DiffAE Table 7 naming)."""

    image_size: int = 64
    in_channels: int = 1
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 4
    dropout: float = 0.1
    z_dim: int = 512
    dims: int = 2


class _Sequential(nn.ModuleList):
    """Applies layers in order, passing (emb, z) to the ones that take them."""

    def forward(self, x, emb=None, z=None):
        for layer in self:
            x = layer(x, emb, z) if isinstance(layer, ResBlock) else layer(x)
        return x


class DiffAEUNet(nn.Module):
    """The conditional decoder eps/x/v_theta(x_t, t, z_sem) of a diffusion autoencoder."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, dims = cfg.model_channels, cfg.dims
        emb_ch = 4 * ch
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.input_blocks = nn.ModuleList([_Sequential([conv_nd(dims, cfg.in_channels, ch, 3, padding=1)])])
        skips, res, cur = [ch], cfg.image_size, ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(cur, mult * ch, dims, emb_ch, cfg.z_dim, cfg.dropout)]
                cur = mult * ch
                if res in cfg.attention_resolutions:
                    layers.append(AttentionBlock(cur, cfg.num_heads))
                self.input_blocks.append(_Sequential(layers))
                skips.append(cur)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(_Sequential([Downsample(cur, dims)]))
                skips.append(cur)
                res //= 2
        self.middle = _Sequential([ResBlock(cur, cur, dims, emb_ch, cfg.z_dim, cfg.dropout),
                                   AttentionBlock(cur, cfg.num_heads),
                                   ResBlock(cur, cur, dims, emb_ch, cfg.z_dim, cfg.dropout)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(cur + skips.pop(), mult * ch, dims, emb_ch, cfg.z_dim, cfg.dropout)]
                cur = mult * ch
                if res in cfg.attention_resolutions:
                    layers.append(AttentionBlock(cur, cfg.num_heads))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(cur, dims))
                    res *= 2
                self.output_blocks.append(_Sequential(layers))
        self.out = nn.Sequential(group_norm(cur), nn.SiLU(), zero_module(conv_nd(dims, cur, cfg.in_channels, 3, padding=1)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))
        hs, h = [], x_t
        for block in self.input_blocks:
            h = block(h, emb, z_sem)
            hs.append(h)
        h = self.middle(h, emb, z_sem)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, z_sem)
        return self.out(h)


@dataclass
class EncoderConfig:
    """Semantic encoder z_sem = Enc(x0): the UNet's downsampling half, pooled (DiffAE Sec. 3.1).

    Only what differs from the decoder: the image size and channels, base width, heads, ``z_dim``
    and ``dims`` are the decoder's (:class:`UNetConfig`), given to :class:`SemanticEncoder` beside it.
    """

    channel_mult: tuple[int, ...] = (1, 2, 4, 8, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    pool: str = "avg"
    middle: bool = False  # DiffAE's middle block (ResBlock, attention, ResBlock) before the head

    def __post_init__(self) -> None:
        if self.pool not in ENCODER_POOLS:
            raise LatentmedError(f"model.encoder.pool (the semantic encoder's pooling) must be one of "
                                 f"{', '.join(ENCODER_POOLS)}; got {self.pool!r}.")


#: ``avg``: DiffAE's global average pooling (translation invariant). ``flatten``: a linear map of
#: the whole last feature map, which keeps *where* a feature is: for centred crops (a vertebra
#: in the middle of the patch) the centre body's height then stays apart from its neighbours'.
ENCODER_POOLS = ("avg", "flatten")


class SemanticEncoder(nn.Module):
    """Downsampling ResBlocks (no time, no z conditioning), then GN-SiLU and a pooled linear map to ``z_dim``.

    ``pool="avg"`` is DiffAE's head (avgpool, 1x1 conv); ``pool="flatten"`` flattens the last
    feature map into one linear layer instead (see :data:`ENCODER_POOLS`). ``middle=True`` adds
    DiffAE's middle block before the head (``BeatGANsEncoderModel``: ResBlock, attention, ResBlock
    at the lowest resolution), which lets every position of the last map see the others. ``net`` is
    the decoder's :class:`UNetConfig`: the encoder shares its image size, channels, base width, heads,
    ``z_dim`` and ``dims``.
    """

    def __init__(self, cfg: EncoderConfig, net: UNetConfig):
        super().__init__()
        ch, dims = net.model_channels, net.dims
        layers: list[nn.Module] = [conv_nd(dims, net.in_channels, ch, 3, padding=1)]
        cur, res = ch, net.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cur, mult * ch, dims, dropout=cfg.dropout))
                cur = mult * ch
                if res in cfg.attention_resolutions:
                    layers.append(AttentionBlock(cur, net.num_heads))
            if level != len(cfg.channel_mult) - 1:
                layers.append(Downsample(cur, dims))
                res //= 2
        if cfg.middle:
            layers += [ResBlock(cur, cur, dims, dropout=cfg.dropout), AttentionBlock(cur, net.num_heads),
                       ResBlock(cur, cur, dims, dropout=cfg.dropout)]
        self.body = _Sequential(layers)
        if cfg.pool == "avg":
            pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
            head = [pool, conv_nd(dims, cur, net.z_dim, 1), nn.Flatten()]
        else:
            head = [nn.Flatten(), nn.Linear(cur * res ** dims, net.z_dim)]
        self.head = nn.Sequential(group_norm(cur), nn.SiLU(), *head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
