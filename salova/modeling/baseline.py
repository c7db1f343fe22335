"""The padded ST-Connector of the released code: the yardstick for tests and benchmarks.

Same weights as `STConnector`, same output, computed the straightforward way:
all scenes are zero-padded to the longest one, padded tokens are masked out of
the attention, and every layer normalises the media and projects it to keys
and values on its own. No token drop (this is the inference form). Nothing here
is optimised on purpose: it is the obviously-correct reference.
"""

import torch

from salova.modeling.positions import positions


def padded_forward(connector, patches, frames_per_scene, scene_cls):
    """(sum F_i, P, D) packed frames -> (T, 1+L, D), via padding to the longest scene."""
    frames = [int(n) for n in frames_per_scene]
    n_scenes, longest = len(frames), max(frames)
    n_patches, dim = connector.num_patches, connector.dim

    padded = patches.new_zeros(n_scenes, longest, n_patches, dim)  # (T, F_max, P, D)
    frame_pos = patches.new_zeros(n_scenes, longest, dim)  # (T, F_max, D)
    for scene, scene_frames in enumerate(patches.split(frames)):
        padded[scene, :frames[scene]] = scene_frames
        frame_pos[scene, :frames[scene]] = positions(connector.frame_embs, frames[scene])
    media = padded + connector.spatial_embs + frame_pos[:, :, None]  # (T, F_max, P, D)
    media = media.reshape(n_scenes, longest * n_patches, dim)  # (T, N_max, D)
    frame_index = torch.arange(longest * n_patches, device=patches.device) // n_patches
    is_padding = frame_index[None, :] >= torch.tensor(frames, device=patches.device)[:, None]  # (T, N_max)

    latents = connector.latents.unsqueeze(0).repeat(n_scenes, 1, 1)  # (T, 1+L, D)
    latents[:, 0] = latents[:, 0] + scene_cls
    for layer in connector.layers:
        latents = latents + _padded_attention(layer.attn, media, latents, is_padding)
        latents = latents + layer.ff(latents)
    return connector.norm(latents)


def _padded_attention(attn, media, latents, is_padding):
    # media (T, N_max, D); latents (T, Lq, D); is_padding (T, N_max) -> (T, Lq, D)
    n_scenes, n_latents, _ = latents.shape
    heads = attn.heads
    media_normed = attn.norm_media(media)
    latents_normed = attn.norm_latents(latents)
    q = attn.to_q(latents_normed)  # (T, Lq, inner)
    k, v = attn.to_kv(torch.cat([media_normed, latents_normed], dim=1)).chunk(2, dim=-1)  # (T, N_max+Lq, inner)
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))  # (T, heads, n, dim_head)

    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (T, heads, Lq, N_max+Lq)
    latents_never_masked = torch.zeros(n_scenes, n_latents, dtype=torch.bool, device=latents.device)
    key_is_padding = torch.cat([is_padding, latents_never_masked], dim=1)  # (T, N_max+Lq)
    scores = scores.masked_fill(key_is_padding[:, None, None, :], float("-inf"))
    weights = scores.softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).flatten(2)  # (T, Lq, inner)
    return attn.to_out(out)


def per_scene_forward(connector, patches, frames_per_scene, scene_cls):
    """`padded_forward` called once per scene (no padding at all, but no batching either)."""
    frames = [int(n) for n in frames_per_scene]
    outputs = [
        padded_forward(connector, scene_frames, [len(scene_frames)], scene_cls[scene:scene + 1])
        for scene, scene_frames in enumerate(patches.split(frames))
    ]
    return torch.cat(outputs)
