"""Recording a diffusers UNet's self-attention probabilities (DiffSeg, Tian et al. 2024, Sec. 3.1).

:class:`SelfAttentionRecorder` composes with the processor already installed on each
self-attention module (``attn1`` of every transformer block): the wrapped processor
computes the block's output exactly as before, and the recorder recomputes
``softmax(Q K^T / sqrt(d))`` on the side, averaging heads one at a time so that only one
``[B, N, N]`` map per head is alive. The output of the model is therefore bit-identical
with and without capture. :func:`capture_self_attention` installs the recorders for one
or more forward passes and restores the original processors on exit.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator

import torch

from latentmed.errors import LatentmedError


@dataclass
class AttentionStore:
    """Head-averaged self-attention maps, summed per query resolution ``N = h*w``.

    ``sums[N]`` is ``[B, N, N]`` (query, key), ``counts[N]`` how many blocks were added;
    ``keep_blocks=True`` also keeps each block's map in ``blocks[name]`` (more memory).
    """

    dtype: torch.dtype = torch.float32
    keep_blocks: bool = False
    blocks: dict[str, torch.Tensor] = field(default_factory=dict)
    sums: dict[int, torch.Tensor] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    block_names: list[str] = field(default_factory=list)

    def add(self, name: str, probs: torch.Tensor) -> None:
        n = probs.shape[-1]
        probs = probs.to(self.dtype)
        if self.keep_blocks:
            self.blocks[name] = probs
        if n in self.sums:
            self.sums[n] = self.sums[n] + probs
            self.counts[n] += 1
        else:
            self.sums[n] = probs
            self.counts[n] = 1
        self.block_names.append(name)

    def maps(self) -> dict[int, torch.Tensor]:
        """Mean over blocks per sequence length: ``{N: [B, N, N]}`` (float32)."""
        return {n: (s.float() / self.counts[n]) for n, s in sorted(self.sums.items())}

    def clear(self) -> None:
        self.blocks.clear()
        self.sums.clear()
        self.counts.clear()
        self.block_names.clear()


class SelfAttentionRecorder:
    """An attention processor that runs ``inner`` unchanged and records its self-attention.

    Cross-attention calls (``encoder_hidden_states`` given) are passed through untouched.
    Probabilities are computed in float32 per head and averaged over heads immediately.
    """

    def __init__(self, inner, store: AttentionStore, name: str):
        self.inner = inner
        self.store = store
        self.name = name
        self.enabled = True

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if self.enabled and encoder_hidden_states is None:
            with torch.no_grad():
                self.store.add(self.name, self_attention_probs(attn, hidden_states, attention_mask, temb))
        return out


def self_attention_probs(attn, hidden_states: torch.Tensor, attention_mask=None, temb=None) -> torch.Tensor:
    """Head-averaged ``softmax(Q K^T * scale)`` of a diffusers ``Attention`` module: ``[B, N, N]``.

    Follows the pre-processing of ``AttnProcessor2_0`` (spatial norm, 4-D input, group norm,
    q/k norms) so the maps are those the block actually uses.
    """
    x = hidden_states
    if attn.spatial_norm is not None:
        x = attn.spatial_norm(x, temb)
    if x.ndim == 4:
        b, c, h, w = x.shape
        x = x.view(b, c, h * w).transpose(1, 2)
    batch, seq, _ = x.shape
    if attn.group_norm is not None:
        x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
    query = attn.to_q(x)
    key = attn.to_k(x)
    head_dim = key.shape[-1] // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, key.shape[-1] // head_dim, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat key heads
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    bias = None
    if attention_mask is not None:
        bias = attn.prepare_attention_mask(attention_mask, seq, batch)
        bias = bias.view(batch, attn.heads, -1, bias.shape[-1]).float()
    scale = 1.0 / math.sqrt(head_dim)  # the scale scaled_dot_product_attention uses
    mean = None
    for head in range(query.shape[1]):
        logits = query[:, head].float() @ key[:, head].float().transpose(1, 2) * scale
        if bias is not None:
            logits = logits + bias[:, head]
        probs = logits.softmax(dim=-1)
        mean = probs if mean is None else mean.add_(probs)
    return mean / query.shape[1]


def self_attention_modules(unet) -> dict[str, object]:
    """``{processor name: Attention module}`` for every self-attention module of ``unet``.

    Raises :class:`LatentmedError` if the model has none (e.g. a UNet of plain ResNet blocks).
    """
    from diffusers.models.attention_processor import Attention

    found = {}
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and not module.is_cross_attention and not module.only_cross_attention:
            found[f"{name}.processor"] = module
    if not found:
        raise LatentmedError(
            f"{type(unet).__name__} has no self-attention blocks, so DiffSeg has no maps to merge. "
            "Use a UNet with transformer/attention blocks (e.g. UNet2DConditionModel with "
            "CrossAttnDownBlock2D / CrossAttnUpBlock2D)."
        )
    return found


@contextlib.contextmanager
def capture_self_attention(unet, *, dtype: torch.dtype = torch.float32,
                           keep_blocks: bool = False) -> Iterator[AttentionStore]:
    """Context manager: record head-averaged self-attention of every block of ``unet``.

    ``dtype=torch.float16`` halves the memory of the stored maps. The original processors are
    restored on exit, also after an exception.

    >>> with capture_self_attention(unet) as store:   # doctest: +SKIP
    ...     unet(z_t, t, encoder_hidden_states=cond)
    >>> maps = store.maps()                            # {N: [B, N, N]}
    """
    modules = self_attention_modules(unet)
    store = AttentionStore(dtype=dtype, keep_blocks=keep_blocks)
    originals = {name: module.processor for name, module in modules.items()}
    try:
        for name, module in modules.items():
            module.set_processor(SelfAttentionRecorder(module.processor, store, name.removesuffix(".processor")))
        yield store
    finally:
        for name, module in modules.items():
            module.set_processor(originals[name])
