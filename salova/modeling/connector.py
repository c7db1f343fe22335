"""ST-Connector: a Perceiver resampler run per scene over packed frames.

Each scene i (F_i frames of P pooled patch tokens, width D) is compressed into
1 routing token and L local tokens (reference salova.md §2.4):

    X_i = patches_i + spatial_embs[p] + frame_embs[f]        f = frame index inside the scene
    Z_i = [latents[0] + scene_cls_i ; latents[1:]]           (1+L, D)
    for each layer:  Z_i += Attn(Z_i, [X_i ; Z_i]);  Z_i += FF(Z_i)
    out_i = LayerNorm(Z_i)                                   [:, 0] routing, [:, 1:] local

Packing. The released code pads every scene to the longest one, so cost grows
with (number of scenes) x (longest scene). Here the frames of all scenes come
packed one after another, (sum F_i, P, D), and each scene's latents attend only
to that scene's tokens, so cost grows with the total number of frames and a
scene's output never depends on the other scenes in the call. The padded form
lives in baseline.py as the yardstick.

Speed. The media keys/values do not depend on the latents, so the media tokens
are layer-normalised once and the keys/values of *both* layers come from one
GEMM over all packed tokens (see `folded_media_kv`). Attention then runs per
scene: a loop of scaled_dot_product_attention on CPU, one flex_attention call
with a block-sparse mask over the packed sequence on CUDA.

Token drop (training only, paper's per-scene rule): scene i with N_i = F_i*P
tokens keeps `kept_tokens(N_i, rate)` of them, chosen at random.

Initialisation: `latents` is [zeros(1, D) ; N(0, 1)] as in the reference (the
latents go through LayerNorm before use, so their scale hardly matters); the
spatial and frame tables are N(0, 0.02^2) instead of the reference's N(0, 1),
so a fresh model does not drown the patch features in position noise.
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from salova.errors import ConfigError
from salova.modeling.positions import positions

# Token-drop rate reaches its full value for scenes of this many tokens (reference constant).
DROP_FULL_RATE_TOKENS = 18000
# Frames per chunk when building the media keys/values. On CPU a chunk's embedded and
# normalised tokens (4 x 196 x 1152 fp32 = 3.6 MB) stay in cache between the three passes
# over them (positions, normalisation, GEMM); on CUDA large chunks keep the kernel count low.
MEDIA_CHUNK_FRAMES = {"cpu": 4, "cuda": 512}
# Scenes per chunk in the latents' feed-forward: bounds its (scenes * (1+L), 4D) hidden activations.
# On CPU two scenes' hidden activations (2 x 257 x 4608 fp32 = 9.5 MB) stay in cache through the GELU.
FF_CHUNK_SCENES = {"cpu": 2, "cuda": 64}


def kept_tokens(n_tokens: int, rate: float) -> int:
    """Tokens a scene of `n_tokens` keeps under token drop `rate` (paper, per scene).

    r = min(N / 18000, 1); keep = max(1, floor(N * (1 - r * rate))).
    The 1e-9 guards float round-off at exact integers (23520 * 0.6 = 14112).
    """
    ratio = min(n_tokens / DROP_FULL_RATE_TOKENS, 1.0)
    return max(1, math.floor(n_tokens * (1.0 - ratio * rate) + 1e-9))


class PerceiverAttention(nn.Module):
    """Latents attend to [media ; latents] (Flamingo-style); bias-free projections."""

    def __init__(self, dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)  # output columns: [k (inner) | v (inner)]
        self.to_out = nn.Linear(inner, dim, bias=False)

    def folded_media_kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """to_kv(norm_media(x)) as one affine map of the plain-normalised tokens.

        With x_hat = (x - mean(x)) / sqrt(var(x) + eps), LayerNorm is g * x_hat + b, so
            to_kv(LN(x)) = W (g * x_hat + b) = (W diag(g)) x_hat + W b.
        Returns weight W diag(g): (2*inner, D) and bias W b: (2*inner,). x_hat is the
        same for every layer, so it is computed once for all of them.
        """
        weight = self.to_kv.weight
        return weight * self.norm_media.weight, weight @ self.norm_media.bias

    def forward(self, latents, media_kv, tokens_per_scene):
        # latents (T, 1+L, D); media_kv (N, 2*inner) this layer's media keys/values, packed
        normed = self.norm_latents(latents)
        q = self.to_q(normed)  # (T, 1+L, inner)
        latent_kv = self.to_kv(normed)  # (T, 1+L, 2*inner)
        out = scene_attention(q, media_kv, latent_kv, tokens_per_scene, self.heads)
        return self.to_out(out)  # (T, 1+L, D)


class PerceiverLayer(nn.Module):
    def __init__(self, dim, heads, dim_head, ff_mult):
        super().__init__()
        self.attn = PerceiverAttention(dim, heads, dim_head)
        self.ff = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, ff_mult * dim, bias=False),
            nn.GELU(),
            nn.Linear(ff_mult * dim, dim, bias=False),
        )


class STConnector(nn.Module):
    def __init__(self, dim, num_patches, num_latents=256, depth=2, heads=2, dim_head=64,
                 ff_mult=4, max_frames=2160):
        super().__init__()
        self.dim = dim
        self.num_patches = num_patches
        routing_latent = torch.zeros(1, dim)
        local_latents = torch.randn(num_latents, dim)
        self.latents = nn.Parameter(torch.cat([routing_latent, local_latents]))  # (1+L, D)
        self.spatial_embs = nn.Parameter(0.02 * torch.randn(num_patches, dim))  # (P, D)
        self.frame_embs = nn.Parameter(0.02 * torch.randn(max_frames, dim))  # (max_frames, D)
        self.layers = nn.ModuleList(PerceiverLayer(dim, heads, dim_head, ff_mult) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, patches, frames_per_scene, scene_cls, token_drop_rate=0.0):
        # patches (sum F_i, P, D); scene_cls (T, D) -> (T, 1+L, D)
        frames = self._check_inputs(patches, frames_per_scene, scene_cls)
        frame_pos = self.frame_positions(frames)  # (sum F_i, D)
        tokens_per_scene = [n * self.num_patches for n in frames]
        kept_ids = None
        if self.training and token_drop_rate > 0:
            kept_ids, tokens_per_scene = self._drop_tokens(tokens_per_scene, token_drop_rate, patches.device)

        media_kv = self._media_kv(patches, frame_pos, kept_ids)  # (N_kept, depth * 2*inner)
        kv_width = media_kv.shape[1] // len(self.layers)
        latents = torch.cat([
            (self.latents[0] + scene_cls).unsqueeze(1),  # routing latent seeded with the scene CLS
            self.latents[1:].expand(len(frames), -1, -1),
        ], dim=1)  # (T, 1+L, D)
        ff_chunk = FF_CHUNK_SCENES.get(patches.device.type, FF_CHUNK_SCENES["cuda"])
        for index, layer in enumerate(self.layers):
            layer_kv = media_kv[:, index * kv_width:(index + 1) * kv_width]
            latents = latents + layer.attn(latents, layer_kv, tokens_per_scene)
            latents = latents + torch.cat([layer.ff(block) for block in latents.split(ff_chunk)])
        return self.norm(latents)

    def frame_positions(self, frames: list[int]) -> torch.Tensor:
        """Each packed frame's position row (its index inside its scene): (sum F_i, D)."""
        return torch.cat([positions(self.frame_embs, n) for n in frames])

    def _check_inputs(self, patches, frames_per_scene, scene_cls) -> list[int]:
        frames = [int(n) for n in (frames_per_scene.tolist() if torch.is_tensor(frames_per_scene)
                                   else frames_per_scene)]
        if not frames or min(frames) < 1:
            raise ConfigError(f"STConnector.forward: frames_per_scene must be positive counts, got {frames}")
        if patches.dim() != 3 or patches.shape[1:] != (self.num_patches, self.dim):
            raise ConfigError(f"STConnector.forward: patches must be (frames, {self.num_patches}, {self.dim}), "
                              f"got {tuple(patches.shape)}")
        if sum(frames) != patches.shape[0]:
            raise ConfigError(f"STConnector.forward: frames_per_scene sums to {sum(frames)} "
                              f"but patches holds {patches.shape[0]} frames")
        if scene_cls.shape != (len(frames), self.dim):
            raise ConfigError(f"STConnector.forward: scene_cls must be ({len(frames)}, {self.dim}), "
                              f"got {tuple(scene_cls.shape)}")
        return frames

    def _drop_tokens(self, tokens_per_scene, rate, device):
        """Random per-scene subsets of token indices (into the flat packed tokens), ascending."""
        kept_ids, kept_counts, start = [], [], 0
        for n_tokens in tokens_per_scene:
            keep = kept_tokens(n_tokens, rate)
            chosen = torch.randperm(n_tokens)[:keep].sort().values + start
            kept_ids.append(chosen)
            kept_counts.append(keep)
            start += n_tokens
        return torch.cat(kept_ids).to(device), kept_counts

    def _media_kv(self, patches, frame_pos, kept_ids):
        """Keys/values of every layer for all packed media tokens: (N, depth * 2*inner).

        Each chunk of tokens is embedded (patch + spatial + frame position), plainly
        normalised once, and multiplied by the stacked folded to_kv weights of all layers.
        Without autograd the chunks are embedded into one reused scratch buffer and their
        keys/values written straight into the result; with it, they are concatenated.
        """
        folded = [layer.attn.folded_media_kv() for layer in self.layers]
        weight = torch.cat([w for w, _ in folded]).t()  # (D, depth * 2*inner)
        bias = torch.cat([b for _, b in folded])  # (depth * 2*inner,)
        eps = self.layers[0].attn.norm_media.eps
        n_tokens = patches.shape[0] * self.num_patches if kept_ids is None else kept_ids.numel()
        chunk = MEDIA_CHUNK_FRAMES.get(patches.device.type, MEDIA_CHUNK_FRAMES["cuda"]) * self.num_patches
        bounds = [(start, min(start + chunk, n_tokens)) for start in range(0, n_tokens, chunk)]
        if torch.is_grad_enabled():
            return torch.cat([torch.addmm(bias, F.layer_norm(self._embedded_tokens(patches, frame_pos, kept_ids,
                                                                                   start, stop), (self.dim,), eps=eps),
                                          weight) for start, stop in bounds])
        kv = patches.new_empty(n_tokens, weight.shape[1])
        scratch = patches.new_empty(min(chunk, n_tokens), self.dim)
        for start, stop in bounds:
            tokens = self._embedded_tokens(patches, frame_pos, kept_ids, start, stop, out=scratch[:stop - start])
            torch.addmm(bias, F.layer_norm(tokens, (self.dim,), eps=eps), weight, out=kv[start:stop])
        return kv

    def _embedded_tokens(self, patches, frame_pos, kept_ids, start, stop, out=None):
        """Packed tokens start..stop (kept tokens when dropping) with positions added: (stop-start, D).

        `out`, when given, receives the result (no autograd)."""
        if kept_ids is None:  # start, stop are multiples of P: whole frames
            first, last = start // self.num_patches, stop // self.num_patches
            if out is None:
                return (patches[first:last] + self.spatial_embs + frame_pos[first:last, None]).reshape(-1, self.dim)
            frames = out.view(last - first, self.num_patches, self.dim)
            torch.add(patches[first:last], self.spatial_embs, out=frames)
            frames += frame_pos[first:last, None]
            return out
        ids = kept_ids[start:stop]
        flat = patches.reshape(-1, self.dim)
        tokens = flat[ids] + self.spatial_embs[ids % self.num_patches] + frame_pos[ids // self.num_patches]
        return tokens if out is None else out.copy_(tokens)


# ---------------------------------------------------------------------------
# Variable-length attention: latents of scene i attend to [media of scene i ; latents of scene i].
# q (T, Lq, inner); media_kv (N, 2*inner) packed scene after scene; latent_kv (T, Lq, 2*inner).
# Returns (T, Lq, inner). The CUDA path is chosen automatically; both give the same result.
# ---------------------------------------------------------------------------

def scene_attention(q, media_kv, latent_kv, tokens_per_scene, heads):
    if q.is_cuda:
        return flex_scene_attention(q, media_kv, latent_kv, tokens_per_scene, heads)
    return looped_scene_attention(q, media_kv, latent_kv, tokens_per_scene, heads)


def _split_kv(kv, heads):
    # kv (n, 2*inner), columns [k | v], heads contiguous -> k, v each (heads, n, dim_head)
    k, v = kv.unflatten(-1, (2, heads, -1)).permute(1, 2, 0, 3).unbind(0)
    return k, v


def looped_scene_attention(q, media_kv, latent_kv, tokens_per_scene, heads):
    """One scaled_dot_product_attention per scene (CPU)."""
    out = torch.empty_like(q)
    start = 0
    for scene, n_tokens in enumerate(tokens_per_scene):
        kv = torch.cat([media_kv[start:start + n_tokens], latent_kv[scene]])  # (n_i + Lq, 2*inner)
        k, v = _split_kv(kv, heads)  # (heads, n_i + Lq, dim_head)
        q_scene = q[scene].unflatten(-1, (heads, -1)).transpose(0, 1)  # (heads, Lq, dim_head)
        # 4-d inputs select the fused (flash) CPU kernel; 3-d ones fall back to the unfused math path
        attended = F.scaled_dot_product_attention(q_scene[None], k[None], v[None])[0]  # (heads, Lq, dim_head)
        out[scene] = attended.transpose(0, 1).flatten(1)
        start += n_tokens
    return out


_compiled_flex_attention = None
FLEX_BLOCK = 128  # flex_attention's block size: rows of queries and keys per tile


def flex_scene_attention(q, media_kv, latent_kv, tokens_per_scene, heads, compile=True):
    """All scenes in one flex_attention call with a block-sparse mask (CUDA).

    Keys/values are laid out scene by scene, [media_0 ; latents_0 ; media_1 ; latents_1 ; ...],
    and each scene's queries are padded to whole 128-row blocks, so every query block belongs to
    one scene: the key blocks wholly inside that scene are "full" (attended with no mask at all)
    and only the at most two blocks at its edges are masked. Work stays proportional to the
    packed length; the padded query rows (< 128 per scene) are computed and dropped. (Eager
    flex_attention masks densely, for tests on CPU; compiled, it visits only the listed blocks.)
    """
    global _compiled_flex_attention
    from torch.nn.attention.flex_attention import flex_attention

    n_scenes, n_latents, inner = q.shape
    padded = -(-n_latents // FLEX_BLOCK) * FLEX_BLOCK
    mask = scene_block_mask(tuple(tokens_per_scene), n_latents, padded, q.device)
    media = media_kv.split(list(tokens_per_scene))
    kv = torch.cat([part for scene in range(n_scenes) for part in (media[scene], latent_kv[scene])])
    k, v = _split_kv(kv, heads)  # (heads, N + T*Lq, dim_head)
    queries = F.pad(q, (0, 0, 0, padded - n_latents)).flatten(0, 1)  # (T*padded, inner)
    queries = queries.unflatten(-1, (heads, -1)).transpose(0, 1)  # (heads, T*padded, dim_head)
    attend = flex_attention
    if compile:
        if _compiled_flex_attention is None:
            _compiled_flex_attention = torch.compile(flex_attention, dynamic=True)  # one graph for every length
        attend = _compiled_flex_attention
    out = attend(queries[None], k[None], v[None], block_mask=mask)[0]  # (heads, T*padded, dim_head)
    return out.transpose(0, 1).unflatten(0, (n_scenes, padded))[:, :n_latents].flatten(2)  # (T, Lq, inner)


@functools.lru_cache(maxsize=8)  # the layers of one forward share their scene layout, hence their mask
def scene_block_mask(tokens_per_scene: tuple[int, ...], n_latents: int, padded_latents: int, device,
                     block_size: int = FLEX_BLOCK):
    """BlockMask for queries [scene 0's latents padded to `padded_latents` rows ; scene 1's ; ...]
    over keys [media_0 ; latents_0 ; media_1 ; latents_1 ; ...].

    `padded_latents` is a multiple of `block_size`, so each query block serves one scene, whose
    keys are the range [start, end). Its full blocks are those wholly inside that range; its
    partial blocks the (at most two) that straddle an end, where mask_mod keeps the range.
    Built from the scene boundaries alone: no dense queries x keys mask is ever formed.
    """
    from torch.nn.attention.flex_attention import BlockMask

    lengths = torch.tensor(tokens_per_scene, device=device) + n_latents
    key_end = lengths.cumsum(0)
    key_start = key_end - lengths
    blocks_per_scene = padded_latents // block_size
    scene = torch.arange(len(tokens_per_scene) * blocks_per_scene, device=device) // blocks_per_scene
    start, end = key_start[scene], key_end[scene]  # each query block's key range
    n_keys = sum(tokens_per_scene) + len(tokens_per_scene) * n_latents
    kv_blocks = -(-n_keys // block_size)
    slot = torch.arange(kv_blocks, device=device)[None, :]  # BlockMask wants one slot per key block

    full_first = -(-start // block_size)
    n_full = (end // block_size - full_first).clamp(min=0)
    full = torch.where(slot < n_full[:, None], full_first[:, None] + slot, 0)

    first_edge = torch.where(start % block_size != 0, start // block_size, -1)
    last_edge = torch.where(end % block_size != 0, (end - 1) // block_size, -1)
    last_edge = torch.where(last_edge == first_edge, -1, last_edge)  # a scene inside one block
    edges = torch.stack([torch.maximum(first_edge, last_edge), torch.minimum(first_edge, last_edge)], 1)
    n_partial = (edges >= 0).sum(1)
    partial = torch.where(slot < n_partial[:, None], F.pad(edges, (0, kv_blocks - 2)), 0)

    def same_scene(batch, head, q_index, kv_index):
        own = q_index // padded_latents
        return (kv_index >= key_start[own]) & (kv_index < key_end[own])

    return BlockMask.from_kv_blocks(n_partial[None, None].int(), partial[None, None].int(),
                                    n_full[None, None].int(), full[None, None].int(), BLOCK_SIZE=block_size,
                                    mask_mod=same_scene, seq_lengths=(len(scene) * block_size, n_keys))
