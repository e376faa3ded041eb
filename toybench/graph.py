"""Comparison graphs of a record table: which responses a loss can tell apart.

Records (a, b) with positive weight join a and b. Within a connected component a pairwise
loss fixes log-ratios up to one constant; the component's total mass, and any response in no
record, are left free. toybench keeps each free part at its π_ref proportions (docs/conventions.md, what solve returns).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ._numerics import per_component


def component_labels(adjacency: torch.Tensor) -> torch.Tensor:
    """Undirected connected components of each prompt's graph.

    ``adjacency`` ``[..., Y, Y]`` (non-zero = edge); returns int64 labels ``[..., Y]``,
    numbered 0.. within each graph (isolated responses get their own label) in the order of their
    lowest response. All graphs are one block-diagonal graph for a single scipy call: its labels
    follow the same order, so each graph's labels are a range starting at its lowest label."""
    flat = adjacency.detach().reshape(-1, *adjacency.shape[-2:]).cpu().numpy() != 0
    graphs, Y = flat.shape[0], flat.shape[-1]
    graph, rows, cols = np.nonzero(flat)
    blocks = csr_matrix((np.ones(len(rows), dtype=bool), (graph * Y + rows, graph * Y + cols)),
                        shape=(graphs * Y, graphs * Y))
    labels = connected_components(blocks, directed=False)[1].reshape(graphs, Y)
    labels = labels - labels.min(-1, keepdims=True)
    return torch.as_tensor(labels, dtype=torch.int64).reshape(adjacency.shape[:-1])


def strong_component_labels(directed: torch.Tensor) -> torch.Tensor:
    """Strongly connected components of each directed graph ``[..., Y, Y]`` (edge a → b)."""
    flat = directed.detach().reshape(-1, *directed.shape[-2:]).cpu().numpy() != 0
    labels = np.stack([connected_components(graph, directed=True, connection="strong")[1] for graph in flat])
    return torch.as_tensor(labels, dtype=torch.int64).reshape(directed.shape[:-1])


def spread_free_parts(ref_logp: torch.Tensor, log_ratio: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Normalise within components, giving each component its π_ref mass.

    ``log_ratio`` ``[..., P, Y]`` is log π/π_ref up to one constant per component (``labels``
    ``[P, Y]``); returns log-probs with π(C) = π_ref(C) for every component C and
    π(y) ∝ π_ref(y)·e^{log_ratio(y)} inside it."""
    logits = ref_logp + log_ratio

    def inside_component(inside, log_mass):
        return log_mass + logits - torch.logsumexp(torch.where(inside, logits, -torch.inf), -1, keepdim=True)

    return per_component(ref_logp, labels, inside_component)
