"""Comparison-graph components against a union–find written here, one graph at a time."""
import numpy as np
import pytest
import torch

from toybench.graph import component_labels


def union_find_labels(adjacency: np.ndarray) -> np.ndarray:
    """Components of one undirected graph [Y, Y], numbered 0.. in the order of their lowest vertex."""
    Y = adjacency.shape[0]
    parent = list(range(Y))

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(adjacency), strict=True):
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    names, labels = {}, []
    for a in range(Y):
        labels.append(names.setdefault(root(a), len(names)))
    return np.array(labels)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.15, 0.4])
def test_component_labels_match_union_find(density):
    """Batched labels ``[2, 5, Y]`` (sparse, one-directional edges, isolated responses) equal each
    graph's own union–find labels."""
    rng = np.random.default_rng(7)
    adjacency = rng.random((2, 5, 9, 9)) < density
    labels = component_labels(torch.as_tensor(adjacency, dtype=torch.float64))
    assert labels.shape == (2, 5, 9) and labels.dtype == torch.int64
    for index in np.ndindex(2, 5):
        np.testing.assert_array_equal(labels[index].numpy(), union_find_labels(adjacency[index]))


def test_component_labels_by_hand():
    """Y = 4: edges 0–2 and 3→1 give components {0, 2} and {1, 3}; no edges give four singletons."""
    adjacency = torch.zeros(2, 4, 4)
    adjacency[0, 0, 2] = adjacency[0, 3, 1] = 1.0
    assert component_labels(adjacency).tolist() == [[0, 1, 0, 1], [0, 1, 2, 3]]
