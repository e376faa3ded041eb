"""toybench: exact, enumerable toy problems for DPO-family preference losses.

Response spaces are finite, policies tabular, so every partition function, population loss,
optimum and KL is an exact sum. See README.md and docs/ for the concepts.
"""
from . import claims, losses, metrics, optima
from .comparison import compare
from .pairs import Pairs, population, sample_pairs
from .policies import Tabular
from .problem import Problem
from .solve import NoFiniteMinimum, Solution, solve
from .spaces import FlatSpace
from .train import History, train

__version__ = "0.1.0"

__all__ = ["FlatSpace", "Problem", "Pairs", "population", "sample_pairs", "solve", "Solution", "NoFiniteMinimum",
           "Tabular", "train", "History", "losses", "optima", "claims", "metrics", "compare"]
