"""Stage II losses and the forward passes they need: log-probabilities of judgements, scalar scores.

* **Generative RMs** (a judge that writes its judgement) use the paper's multi-reject,
  reference-free, length-normalised loss (LongRM §4.3, LOGO-style; SimPO with V rejects)::

      L = -log σ( β/|J_w|·log π(J_w) − (β/V)·Σ_j 1/|J_l^j|·log π(J_l^j) − γ )  +  λ_nll · NLL(J_w)/|J_w|

  With V = 1 and λ_nll = 0 it is exactly trl's SimPO loss (``CPOTrainer.cpo_loss`` with
  ``loss_type="simpo"``); ``tests/test_align.py`` checks it.
* **Scalar RMs** (a sequence-classification head on the last token) use Bradley-Terry against the
  mean of the rejects: ``L = -log σ( r_c − mean_j r_rej_j )``; with V = 1 it is trl's
  ``RewardTrainer`` loss.

**The shared prefix.** One item is one prompt (the long context, almost all the tokens) and
1 + V responses. :func:`completion_logps` and :func:`scalar_scores` encode the prompt **once**:
its KV cache is computed with gradients, read 1 + V times along the batch as an expanded view,
and every response is run from it as a right-padded batch with explicit positions
(:func:`prefix_expand_forward`); checkpointed layers keep that cache (:mod:`.longctx`). ``shared_prefix=False`` encodes each
sequence separately instead; the tests check both give the same numbers.
"""
from __future__ import annotations

from typing import Sequence

from ..models import unwrap
from .longctx import (cache_through_checkpoints, check_plain_logits, chunked_token_logps, continuation_cache,
                      prompt_cache)


# --- losses: pure functions of tensors ----------------------------------------------------------

def multi_reject_simpo_loss(chosen_logps, chosen_lens, reject_logps, reject_lens, *, beta: float, gamma: float,
                            nll_weight: float = 0.0, reject_mask=None):
    """The Stage II generative loss for a batch of B items with up to V rejects each.

    Args:
        chosen_logps: ``[B]`` summed log-probabilities of the winning judgement ``log π(J_w)``.
        chosen_lens: ``[B]`` its token count ``|J_w|``.
        reject_logps: ``[B, V]`` summed log-probabilities of the rejects ``log π(J_l^j)``.
        reject_lens: ``[B, V]`` their token counts.
        beta, gamma: the paper's β (reward scale) and γ (target margin).
        nll_weight: weight of the length-normalised NLL on the winner (0 turns it off).
        reject_mask: optional ``[B, V]`` bool; items with fewer rejects average over the ones they
            have (``V`` in the formula is then that item's own count).

    Returns:
        ``(losses [B], chosen_rewards [B], reject_rewards [B])`` where the rewards are
        ``β·log π / |J|`` (the reject reward is the mean over the item's rejects).
    """
    import torch
    import torch.nn.functional as F

    if reject_logps.dim() != 2 or reject_logps.shape != reject_lens.shape:
        raise ValueError(f"reject_logps/reject_lens must both be [B, V]; got {tuple(reject_logps.shape)} "
                         f"and {tuple(reject_lens.shape)}")
    if reject_mask is None:
        reject_mask = torch.ones_like(reject_logps, dtype=torch.bool)
    n_rej = reject_mask.sum(-1)
    if bool((n_rej == 0).any()):
        raise ValueError("every item needs at least one reject (reject_mask has an all-False row)")
    if bool((chosen_lens <= 0).any()) or bool((reject_lens[reject_mask] <= 0).any()):
        raise ValueError("response lengths must be positive (an empty response has no log-probability)")
    chosen_rewards = beta * chosen_logps / chosen_lens
    per_rej = torch.where(reject_mask, beta * reject_logps / reject_lens.clamp(min=1), torch.zeros_like(reject_logps))
    reject_rewards = per_rej.sum(-1) / n_rej
    losses = -F.logsigmoid(chosen_rewards - reject_rewards - gamma)
    if nll_weight:
        losses = losses + nll_weight * (-chosen_logps / chosen_lens)
    return losses, chosen_rewards, reject_rewards


def bradley_terry_loss(chosen_scores, reject_scores, reject_mask=None):
    """Scalar-RM Stage II loss ``-log σ(r_c − mean_j r_rej_j)`` for ``[B]`` and ``[B, V]`` scores.

    Returns ``(losses [B], margins [B])``; with V = 1 it is trl's RewardTrainer loss.
    """
    import torch
    import torch.nn.functional as F

    if reject_scores.dim() != 2:
        raise ValueError(f"reject_scores must be [B, V]; got {tuple(reject_scores.shape)}")
    if reject_mask is None:
        reject_mask = torch.ones_like(reject_scores, dtype=torch.bool)
    n_rej = reject_mask.sum(-1)
    if bool((n_rej == 0).any()):
        raise ValueError("every item needs at least one reject (reject_mask has an all-False row)")
    mean_rej = torch.where(reject_mask, reject_scores, torch.zeros_like(reject_scores)).sum(-1) / n_rej
    margins = chosen_scores - mean_rej
    return -F.logsigmoid(margins), margins


# --- forward passes: one prompt, many responses ---------------------------------------------------

def _right_pad(seqs: Sequence[Sequence[int]], pad_id: int, device):
    import torch

    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(seqs), L), dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long, device=device)
        mask[i, :len(s)] = 1
    return ids, mask


def model_device(model):
    """The device of the model's (first) parameters."""
    return next(model.parameters()).device


def prefix_expand_forward(model, prefix_ids: Sequence[int], continuations: Sequence[Sequence[int]], pad_id: int):
    """Run N continuations from ONE encoding of a shared prefix (gradients flow through both).

    The prefix is encoded once into a KV cache; the continuations run as one right-padded batch
    with explicit ``position_ids`` and an attention mask over prefix + continuation, reading the
    cache repeated N times along the batch as an expanded view. Works with checkpointed layers
    (:mod:`.longctx`). Returns the backbone's last hidden states ``[N, L, d]`` and the
    continuation mask ``[N, L]``.
    """
    import torch

    if not prefix_ids:
        raise ValueError("shared prefix is empty")
    if any(len(c) == 0 for c in continuations):
        raise ValueError("every continuation needs at least one token")
    base = unwrap(model)
    dev = model_device(model)
    fwd = getattr(base, base.base_model_prefix)  # the backbone: hidden states, never [P x vocab] logits
    P, N = len(prefix_ids), len(continuations)
    with cache_through_checkpoints(base):
        cache = prompt_cache()
        fwd(torch.tensor([list(prefix_ids)], device=dev), cache=cache, use_cache=True)
        ids, mask = _right_pad(continuations, pad_id, dev)
        L = ids.shape[1]
        attn = torch.cat([torch.ones((N, P), dtype=torch.long, device=dev), mask], dim=1)
        pos = torch.arange(P, P + L, device=dev).unsqueeze(0).expand(N, L)
        out = fwd(ids, attention_mask=attn, position_ids=pos, cache=continuation_cache(cache, N), use_cache=True)
    return out.last_hidden_state, mask


def _backbone_hidden(model, seqs, pad_id):
    base = unwrap(model)
    ids, mask = _right_pad(seqs, pad_id, model_device(model))
    return getattr(base, base.base_model_prefix)(ids, attention_mask=mask).last_hidden_state, ids, mask


def completion_logps(model, prompt_ids: Sequence[int], completions: Sequence[Sequence[int]], pad_id: int,
                     *, shared_prefix: bool = True):
    """Summed log-probabilities ``[N]`` and lengths ``[N]`` of each completion given the prompt.

    Only the completions' positions go through the vocabulary, ``LOSS_CHUNK`` at a time
    (:func:`.longctx.chunked_token_logps`)."""
    import torch

    check_plain_logits(model)
    dev = model_device(model)
    head = unwrap(model).get_output_embeddings()
    lens = torch.tensor([len(c) for c in completions], device=dev, dtype=torch.float32)
    if shared_prefix:
        # The last prompt token goes with the continuations, so its hidden state predicts each first token.
        conts = [[prompt_ids[-1]] + list(c) for c in completions]
        if len(prompt_ids) > 1:
            hidden, _ = prefix_expand_forward(model, prompt_ids[:-1], conts, pad_id)
        else:
            hidden, _, _ = _backbone_hidden(model, conts, pad_id)
        targets, tmask = _right_pad(conts, pad_id, dev)
        lp = chunked_token_logps(hidden[:, :-1], head, targets[:, 1:])
        return (lp * tmask[:, 1:]).sum(-1), lens
    P = len(prompt_ids)
    hidden, ids, mask = _backbone_hidden(model, [list(prompt_ids) + list(c) for c in completions], pad_id)
    lp = chunked_token_logps(hidden[:, P - 1:-1], head, ids[:, P:])  # from the last prompt position on
    return (lp * mask[:, P:]).sum(-1), lens


def scalar_scores(model, prompt_ids: Sequence[int], responses: Sequence[Sequence[int]], pad_id: int,
                  *, shared_prefix: bool = True):
    """Scalar-RM scores ``[N]`` of prompt + each response, read at the last real token.

    ``shared_prefix=False`` is the reference: each sequence through the model's own
    ``ForSequenceClassification`` forward (which pools the last non-pad token), batched with right
    padding. A response whose last token *is* the pad id would be pooled differently by that
    reference (SmolLM2's GGUF tokenizer pads with ``<|im_end|>``), so it is refused.
    """
    import torch

    for k, r in enumerate(responses):
        if r and r[-1] == pad_id:
            raise ValueError(f"response {k} ends with the pad token id {pad_id}; the model's own pooling would skip "
                             "it. Give the tokenizer a pad token that no response ends with (SmolLM2's GGUF "
                             "tokenizer pads with <|im_end|>, which ends every chat turn).")
    if shared_prefix:
        hidden, mask = prefix_expand_forward(model, prompt_ids, responses, pad_id)
        last = mask.sum(-1) - 1
        h = hidden[torch.arange(len(responses), device=hidden.device), last]
        return unwrap(model).score(h).squeeze(-1).float()
    seqs = [list(prompt_ids) + list(r) for r in responses]
    ids, mask = _right_pad(seqs, pad_id, model_device(model))
    return unwrap(model)(ids, attention_mask=mask).logits.squeeze(-1).float()
