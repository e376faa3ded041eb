"""toybench: exact, enumerable toy problems for DPO-family preference losses.

Response spaces are finite, policies tabular, so every partition function, population loss,
optimum and KL is an exact sum. See README.md and docs/ for the concepts.
"""
from . import claims, losses, metrics, optima, procedures, rankings
from .autoregressive import AutoregressiveTabular
from .comparison import compare
from .fit_best import FitResult, SimplexGap, fit_best, loglinear_residual
from .pairs import Pairs, population, sample_pairs
from .policies import Tabular
from .problem import Problem
from .shared_policies import MLP, LogLinear
from .solve import NoFiniteMinimum, Solution, SolveFailed, solve
from .spaces import FlatSpace, SequenceSpace
from .train import History, train
from .transformer import TinyTransformer

__version__ = "0.1.0"

__all__ = ["FlatSpace", "SequenceSpace", "Problem", "Pairs", "population", "sample_pairs", "solve", "Solution",
           "NoFiniteMinimum", "SolveFailed", "Tabular", "AutoregressiveTabular", "LogLinear", "MLP", "TinyTransformer",
           "fit_best", "FitResult", "SimplexGap", "loglinear_residual", "train", "History", "losses", "optima", "claims", "metrics", "compare",
           "procedures", "rankings"]
