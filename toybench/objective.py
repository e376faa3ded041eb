"""From a log-prob table and records to per-record loss inputs and the population objective.

This is the one place where records meet policies: ``record_inputs`` gathers the sequence
log-probs of every record's chosen and rejected response (plus lengths or named ``Pairs``
fields a loss needs); ``objective`` is Σ_records weight·loss, one number per run.
"""
from __future__ import annotations

import torch

from ._numerics import flat_index


def record_inputs(loss, logp: torch.Tensor, pairs) -> dict:
    """Loss arguments for every record: ``chosen_logp``, ``rejected_logp``, ``ref_chosen_logp``,
    ``ref_rejected_logp`` and the extras in ``loss.needs``, each ``[B, N]``.

    ``logp`` is the policy table ``[B, P, Y]``; B is the larger of its run axis and the
    records' (1 broadcasts)."""
    prob = pairs.problem
    runs = max(logp.shape[0], pairs.runs)
    chosen_idx = flat_index(pairs.prompt, pairs.chosen, prob.Y).to(logp.device)
    rejected_idx = flat_index(pairs.prompt, pairs.rejected, prob.Y).to(logp.device)
    table = logp.reshape(logp.shape[0], -1)
    ref = prob.ref_logp.to(device=logp.device, dtype=logp.dtype).reshape(1, -1)
    inputs = {
        "chosen_logp": _take(table, chosen_idx, runs),
        "rejected_logp": _take(table, rejected_idx, runs),
        "ref_chosen_logp": _take(ref, chosen_idx, runs),
        "ref_rejected_logp": _take(ref, rejected_idx, runs),
    }
    names = loss.required_inputs(prob.space)
    if any(name.endswith(("_token_logratio", "_steps")) for name in names):
        from .losses.token import token_inputs  # per-token views of a SequenceSpace table
        inputs.update(token_inputs(pairs, runs, logp))
    for name in names:
        if name not in inputs:
            inputs[name] = _extra(name, pairs, runs, logp)
    return inputs


def _take(table: torch.Tensor, index: torch.Tensor, runs: int) -> torch.Tensor:
    """``table[b, index[b, k]]`` as ``[runs, N]``; a table and index shared by every run give one
    row broadcast over the runs (an expanded view, not a copy)."""
    rows = max(table.shape[0], index.shape[0])
    return table.expand(rows, -1).gather(1, index.expand(rows, -1)).expand(runs, -1)


def _extra(name: str, pairs, runs: int, like: torch.Tensor) -> torch.Tensor:
    if name in ("chosen_len", "rejected_len"):
        responses = pairs.chosen if name == "chosen_len" else pairs.rejected
        lengths = pairs.problem.space.lengths.to(device=like.device, dtype=like.dtype)
        return lengths[responses.to(like.device)].expand(runs, -1)
    if name not in pairs.fields:
        raise ValueError(f"this loss needs the per-record input {name!r}; add it with pairs.with_fields({name}=...)")
    return pairs.fields[name].to(device=like.device, dtype=like.dtype).expand(runs, -1)


def call_loss(loss, inputs: dict) -> torch.Tensor:
    """Per-record losses ``[B, N]`` from ``record_inputs``' dict."""
    return loss(**inputs)


def objective(loss, logp: torch.Tensor, pairs) -> torch.Tensor:
    """Population (or data-set) loss Σ_records weight·L, ``[B]``."""
    per_record = call_loss(loss, record_inputs(loss, logp, pairs))
    weight = pairs.weight.to(device=per_record.device, dtype=per_record.dtype)
    return (weight * per_record).sum(-1)
