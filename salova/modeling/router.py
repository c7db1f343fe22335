"""SR-Router: scores every scene of a video against a text query (salova.md §2.6).

    V   = routing tokens (T, D), one copy per query             -> (B, T, D)
    S   = text_proj(text tokens)                                 -> (B, 1+L_t, D)
    per layer (cross-attention only, 1 head):
        h = V + MHA(q = V + scene_pos, k = S + text_pos, v = S, text pads masked)
        V = LN2(h + W2 PReLU(W1 LN1(h)))
    score[b, i] = exp(tau) * cos(V[b, i], S[b, 0])           S[b, 0] = projected pooled text

Choices against the released `SelectorAttn` (the README carries this table):
- no outer residual: the released `TransformerEncoder` adds each layer's input
  again, which doubles the text tokens every layer (4x after 2 layers) and
  gives the video a second residual; here a layer's output is h above.
- the position terms are plain learned embeddings added to queries and keys;
  the released code adds LN(x + E[pos]) as the "position" (x counted twice).
- no dropout anywhere (the released position dropout is fixed at 0.1).
- no global token, no second encoder: both are dead in the released configuration.
- scene positions beyond `max_scenes` use the table linearly resampled to T
  (`positions`), so a video may have any number of scenes (released cap: 256);
  text longer than `max_text` is handled the same way.
- the query vector is text_proj(pooled text) without a position embedding,
  as in the released score (there it is scaled by 4, which the cosine ignores).
"""

import torch
import torch.nn.functional as F
from torch import nn

from salova.errors import ConfigError
from salova.modeling.positions import positions


class RouterLayer(nn.Module):
    """Video queries attend to text; then a post-norm PReLU feed-forward."""

    def __init__(self, dim, num_heads, ffn_dim):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = nn.PReLU()
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, video, video_pos, text, text_pos, text_is_pad):
        # video (B, T, D); video_pos (T, D); text (B, 1+L_t, D); text_pos (1+L_t, D); text_is_pad (B, 1+L_t)
        attended, _ = self.cross_attn(video + video_pos, text + text_pos, text,
                                      key_padding_mask=text_is_pad, need_weights=False)
        h = video + attended
        return self.norm2(h + self.linear2(self.activation(self.linear1(self.norm1(h)))))


class SRRouter(nn.Module):
    def __init__(self, dim, text_dim, num_layers=2, num_heads=1, ffn_dim=None,
                 max_scenes=256, max_text=2048, init_logit_scale=1.0):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, dim)
        self.scene_pos = nn.Parameter(0.02 * torch.randn(max_scenes, dim))  # (max_scenes, D)
        self.text_pos = nn.Parameter(0.02 * torch.randn(max_text, dim))  # (max_text, D)
        self.layers = nn.ModuleList(RouterLayer(dim, num_heads, ffn_dim or dim) for _ in range(num_layers))
        # tau, shape (1,): scores scale by exp(tau). Not 0-dim: DeepSpeed cannot broadcast 0-dim parameters.
        self.logit_scale = nn.Parameter(torch.tensor([float(init_logit_scale)]))

    def forward(self, routing_tokens, text_tokens, text_mask):
        # routing_tokens (T, D); text_tokens (B, 1+L_t, d_t); text_mask (B, 1+L_t) True = real -> (B, T)
        self._check_inputs(routing_tokens, text_tokens, text_mask)
        n_queries, n_text = text_mask.shape
        text = self.text_proj(text_tokens)  # (B, 1+L_t, D)
        video = routing_tokens.expand(n_queries, -1, -1)  # (B, T, D)
        video_pos = positions(self.scene_pos, routing_tokens.shape[0])
        text_pos = positions(self.text_pos, n_text)
        for layer in self.layers:
            video = layer(video, video_pos, text, text_pos, ~text_mask)
        query = text[:, :1]  # (B, 1, D) projected pooled text, no position embedding
        return self.logit_scale.exp() * F.cosine_similarity(video, query, dim=-1)

    def _check_inputs(self, routing_tokens, text_tokens, text_mask):
        if routing_tokens.dim() != 2 or text_tokens.dim() != 3:
            raise ConfigError(f"SRRouter.forward: routing_tokens must be (T, D) and text_tokens (B, 1+L, d_t), "
                              f"got {tuple(routing_tokens.shape)} and {tuple(text_tokens.shape)}")
        if text_mask.shape != text_tokens.shape[:2] or text_mask.dtype != torch.bool:
            raise ConfigError(f"SRRouter.forward: text_mask must be a bool tensor of shape "
                              f"{tuple(text_tokens.shape[:2])}, got {text_mask.dtype} {tuple(text_mask.shape)}")
        if not bool(text_mask[:, 0].all()):
            raise ConfigError("SRRouter.forward: text_mask[:, 0] (the pooled query token) must be True for every query")


def similarity_loss(scores, labels, margin=0.2, use_margin=True, kind="bce"):
    """BCE-with-logits on the scores (or, with kind="softmax", scene_softmax_loss) plus a margin
    ranking term within each query row.

    scores, labels (B, T); labels are 0/1 floats. The margin term is the mean of
    max(0, margin - (s_pos - s_neg)) over every (positive, negative) pair of the same
    row: deterministic, and a query is never ranked against another query's scenes
    (the released code samples a random number of pairs across rows). Rows without a
    positive or without a negative add no pairs; with no pairs at all the term is 0.
    Returns (base + margin term, {"bce" or "softmax": base, "margin": ...}).
    """
    base = scene_softmax_loss(scores, labels) if kind == "softmax" else F.binary_cross_entropy_with_logits(scores, labels)
    margin_term = scores.new_zeros(())
    if use_margin:
        is_pos = labels > 0.5
        pairs = is_pos[:, :, None] & ~is_pos[:, None, :]  # (B, T_pos, T_neg) within a row
        if pairs.any():
            gaps = scores[:, :, None] - scores[:, None, :]  # s_pos - s_neg for every pair
            margin_term = F.relu(margin - gaps)[pairs].mean()
    return base + margin_term, {kind: base, "margin": margin_term}


def scene_softmax_loss(scores, labels):
    """Cross-entropy of each query over its video's scenes: -log(sum of exp(score) over the
    positives / sum over all scenes), averaged over the rows that have a positive.

    scores, labels (B, T). Unlike the mean BCE over all B x T cells, a query's gradient is not
    divided by the number of scenes, and the loss cannot be lowered by pushing every score down
    together; it rewards exactly the ranking that recall@k measures. Rows without a positive add
    nothing; with none at all the loss is 0.
    """
    is_pos = labels > 0.5
    rows = is_pos.any(dim=1)
    if not rows.any():
        return scores.new_zeros(())
    positives = scores.masked_fill(~is_pos, float("-inf")).logsumexp(dim=1)
    return (scores.logsumexp(dim=1) - positives)[rows].mean()


def in_batch_labels(n):
    """Stage-1 labels: query b matches sample b only. (n, n) float identity."""
    return torch.eye(n)


def in_batch_infonce_loss(scores):
    """Symmetric InfoNCE on an in-batch (B, B) score matrix whose diagonal are the matches:
    the mean of the cross-entropies of each row over the samples and of each column over the
    captions. Unlike BCE on identity labels it cannot be lowered by moving every score together,
    so it has no constant-score solution to fall into (with B = 8 and no bias, BCE settles at the
    constant score logit(1/8), loss H(1/8) = 0.377, and stops learning: docs/results.md)."""
    targets = torch.arange(len(scores), device=scores.device)
    return (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2


def router_top1_accuracy(scores, labels) -> float:
    """Fraction of query rows whose best-scoring scene is a positive."""
    best = scores.argmax(dim=1, keepdim=True)
    return labels.gather(1, best).gt(0.5).float().mean().item()
