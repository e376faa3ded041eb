"""The figure gallery: one registered figure (at least) per reproduction in ``toybench.experiments``.

``write(out, only)`` renders figures deterministically — fixed seeds, matplotlib's Agg canvas (no
pyplot state), fixed size and dpi, PNG metadata stripped (``metadata={"Software": None}``) — so two
runs give byte-identical files. It renders everything into a temporary folder beside ``out`` and
moves the files into place only once all are drawn, so a failure leaves nothing half-written.
Each figure carries a one-line caption (its registry entry); ``PALETTE`` gives every loss the same
colour in every figure. Needs the ``analysis`` extra (matplotlib).
"""
from __future__ import annotations

import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import torch

PALETTE = {"dpo": "#1f77b4", "ipo": "#d62728", "cdpo": "#2ca02c", "rdpo": "#9467bd",
           "reference": "#7f7f7f", "data": "#000000", "other": "#ff7f0e"}
"""One colour per loss (and for π_ref, the data density and anything else), used by every figure."""
DPI = 100
SIZE = (9.0, 3.6)


@dataclass(frozen=True)
class Figure:
    """A registered figure: file ``<name>.png``, the reproduction it draws, a one-line caption."""

    name: str
    experiment: str
    caption: str
    draw: Callable


FIGURES: dict[str, Figure] = {}


def figure(name: str, experiment: str, caption: str):
    """Decorator registering ``draw(fig)`` (fills a matplotlib ``Figure``) under ``name``."""
    def register(draw):
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is registered twice")
        FIGURES[name] = Figure(name, experiment, caption, draw)
        return draw
    return register


def select(only: str | None = None) -> list[Figure]:
    """All figures, or the comma-separated names in ``only``; an unknown name lists the valid ones."""
    if only is None:
        return list(FIGURES.values())
    names = [item.strip() for item in only.split(",") if item.strip()]
    unknown = [item for item in names if item not in FIGURES]
    if unknown or not names:
        raise ValueError(f"unknown figure {', '.join(unknown) or repr(only)}; valid names: {', '.join(FIGURES)}")
    return [FIGURES[item] for item in names]


def render(item: Figure, path: pathlib.Path) -> None:
    """Draw one figure into ``path`` (PNG, deterministic bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure
    torch.manual_seed(0)
    fig = MplFigure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    item.draw(fig)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})


def check_output(out) -> pathlib.Path:
    """``out`` as a path that is (or can be made) a writable folder; else a one-line ``ValueError``."""
    out = pathlib.Path(out)
    existing = next((p for p in [out, *out.parents] if p.exists()), pathlib.Path("."))
    if not existing.is_dir():
        raise ValueError(f"cannot write to {str(out)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {str(out)!r}: {str(existing)!r} is not writable")
    return out


def install(staging: pathlib.Path, out: pathlib.Path, names) -> list[pathlib.Path]:
    """Move the finished files ``names`` from ``staging`` into ``out`` (created if needed): each is
    copied beside its destination under a hidden name, then renamed into place."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            hidden = (out / name).with_name(f".{(out / name).name}.partial")
            shutil.copyfile(staging / name, hidden)
            os.replace(hidden, out / name)
    except OSError as err:
        raise ValueError(f"cannot write to {str(out)!r}: {err.strerror or err}") from None
    return [out / name for name in names]


def write(out="figures", only: str | None = None, progress=None) -> list[pathlib.Path]:
    """Render the selected figures into folder ``out``; return the written paths. Everything is drawn
    in a temporary folder first, so an error leaves ``out`` untouched."""
    chosen = select(only)
    out = check_output(out)
    with tempfile.TemporaryDirectory(prefix="toybench-figures-") as staging:
        for item in chosen:
            render(item, pathlib.Path(staging) / f"{item.name}.png")
            if progress is not None:
                progress(item.name)
        return install(pathlib.Path(staging), out, [f"{item.name}.png" for item in chosen])


# ----------------------------------------------------------------------------------- the figures
def _legend(ax, **kwargs):
    ax.legend(fontsize=7, frameon=False, **kwargs)


@figure("ipo_bandit", "ipo_bandit",
        "IPO keeps the regularised optimum, DPO goes deterministic: the IPO paper's 3-action bandit "
        "(arXiv 2310.12036, Fig. 1); D3 resolved as {(a,b),(b,a),(a,c)}.")
def _ipo_bandit(fig):
    from .experiments import ipo_bandit as exp
    taus = exp.TAUS
    axes = fig.subplots(1, 2)
    for ax, data, action in zip(axes, ("D1", "D3_resolved"), (0, 2), strict=True):
        ipo, _ = exp.run(data, "ipo", steps=3000)
        dpo, _ = exp.run(data, "dpo", seeds=1, steps=18000, batch_size=None)
        closed = [float(exp.ipo_closed_form(data, t)[action]) for t in taus]
        mean = ipo[..., action].mean(1)
        half = 1.96 * ipo[..., action].std(1) / math.sqrt(ipo.shape[1])
        x = range(len(taus))
        ax.plot(list(x), closed, "_", color="black", markersize=18, mew=2, label="IPO closed form")
        ax.errorbar(list(x), mean.tolist(), yerr=half.tolist(), fmt="o", color=PALETTE["ipo"], capsize=3,
                    label="IPO, Adam batch 9, 3k steps, 10 seeds (±95% CI)")
        ax.plot(list(x), dpo[:, 0, action].tolist(), "s", color=PALETTE["dpo"], label="DPO, full-batch Adam, 18k steps")
        ax.set_xticks(list(x), [f"{t:g}" for t in taus])
        ax.set_xlabel("τ (regularisation, dimensionless)")
        ax.set_ylabel(f"π({exp.ACTIONS[action]}) (probability)")
        ax.set_title(f"{data}: probability of action {exp.ACTIONS[action]}", fontsize=9)
        _legend(ax)


@figure("optimiser", "optimiser",
        "On one always-same-labelled pair the margin is set by the optimiser: SGD grows DPO's margin like log t, "
        "Adam linearly; cDPO and IPO stop, rDPO runs off (β = τ = 0.5, ε = 0.1).")
def _optimiser(fig):
    from .experiments import optimiser as exp
    axes = fig.subplots(1, 2, sharey=True)
    for ax, opt in zip(axes, ("sgd", "adam"), strict=True):
        for loss in exp.LOSSES:
            steps, margin = exp.margins(loss, opt, betas=(0.5,), steps=4000, every=40)
            ax.plot(steps.numpy(), margin[:, 0].numpy(), color=PALETTE[loss], label=loss)
        ax.set_xlabel("training step")
        ax.set_ylabel("margin Δ = log π(w)/π(l) (nats)")
        ax.set_title(f"{'plain SGD' if opt == 'sgd' else 'Adam'}, lr 0.01", fontsize=9)
        ax.set_yscale("symlog", linthresh=1.0)
        _legend(ax)


@figure("density", "density",
        "Under Luce labels DPO's optimum is π_ref·p*^{1/β}, IPO's π_ref·exp(p(y≻π_ref)/τ): neither is p*; two pooled "
        "annotators give a non-BT preference P (arXiv 2311.14115; 1024 bins, 256 for the mixture).")
def _density(fig):
    from .experiments import density as exp
    x = exp.centres(1024).numpy()
    found = exp.targets(1024)
    ref, data = (exp.reference(1024).exp() * 1024 / 20).numpy(), (exp.data_density(1024).exp() * 1024 / 20).numpy()
    axes = fig.subplots(1, 4)
    for ax, loss, keys in zip(axes[:2], ("dpo", "ipo"), ([k for k in found if k.startswith("dpo")],
                                                         [k for k in found if k.startswith("ipo")]), strict=True):
        ax.plot(x, ref, color=PALETTE["reference"], ls=":", label="π_ref = TN(0, 5)")
        ax.plot(x, data, color=PALETTE["data"], ls="--", label="p* (data density)")
        for key, alpha in zip(keys, (1.0, 0.65, 0.35), strict=True):
            ax.plot(x, (found[key].exp() * 1024 / 20).numpy(), color=PALETTE[loss], alpha=alpha, label=key.upper()[:3] + key[3:])
        ax.set_xlabel("x (dimensionless)")
        ax.set_ylabel("density (per unit x)")
        ax.set_title(f"{loss.upper()}, one Luce annotator", fontsize=8)
        _legend(ax)
    ax = axes[2]
    image = ax.imshow(torch.sigmoid(exp.mixture_log_odds(256)).numpy(), origin="lower", extent=(-10, 10, -10, 10),
                      cmap="RdBu_r", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.6, label="P(a ≻ b) (probability)")
    ax.set_xlabel("b (dimensionless)")
    ax.set_ylabel("a (dimensionless)")
    ax.set_title("0.4·Luce(p₁) + 0.6·Luce(p₂)", fontsize=8)
    ax = axes[3]
    x, mixed = exp.centres(256).numpy(), exp.mixture_targets(256)
    ax.plot(x, (exp.mixture_density(256).exp() * 256 / 20).numpy(), color=PALETTE["data"], ls="--",
            label="0.4·p₁ + 0.6·p₂")
    for key, alpha in zip(mixed, (1.0, 0.65, 0.35) * 2, strict=True):
        loss = key[:3]
        ax.plot(x, (mixed[key].exp() * 256 / 20).numpy(), color=PALETTE[loss], alpha=alpha,
                label=loss.upper() + key[3:])
    ax.set_xlabel("x (dimensionless)")
    ax.set_ylabel("density (per unit x)")
    ax.set_title("optima, two annotators", fontsize=8)
    _legend(ax, loc="upper right")


@figure("ranking_accuracy", "ranking_accuracy",
        "A pair is ranked right iff its DPO loss is below −log σ(β·c): pairs the reference mis-ranks need a loss far "
        "below ln 2 (arXiv 2405.19534, Thm. 4.1; β = 0.1, K = 8).")
def _ranking(fig):
    from .experiments import ranking_accuracy as exp
    run = exp.run(steps=3000, every=30)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    final, threshold, correct = run["loss"][-1].numpy(), run["threshold"].numpy(), run["correct"][-1].numpy()
    ax.plot([0, 1.2], [0, 1.2], color=PALETTE["reference"], lw=0.8, label="loss = threshold")
    ax.scatter(threshold[correct], final[correct], color=PALETTE["dpo"], s=14, label="ranked right")
    ax.scatter(threshold[~correct], final[~correct], color=PALETTE["other"], marker="x", s=18, label="ranked wrong")
    ax.set_xlabel("threshold −log σ(β·c) (nats)")
    ax.set_ylabel("DPO pair loss after 3000 steps (nats)")
    ax.set_title("every (better, worse) pair", fontsize=9)
    _legend(ax)
    ax = axes[1]
    ax.plot(run["steps"].numpy(), run["correct"].double().mean(1).numpy(), color=PALETTE["dpo"], label="ranking accuracy")
    ax.plot(run["steps"].numpy(), run["loss"].mean(1).numpy(), color=PALETTE["dpo"], ls="--", label="mean pair loss (nats)")
    ax.set_xlabel("gradient step (lr 1)")
    ax.set_ylabel("accuracy (fraction) / loss (nats)")
    ax.set_title("accuracy climbs slowly while the loss falls", fontsize=9)
    _legend(ax)


@figure("label_noise", "label_noise",
        "Flipped labels (rate ε) shrink DPO's margin once and cDPO's twice; rDPO is unbiased but needs enough data "
        "for a finite minimiser (arXiv 2403.00409).")
def _label_noise(fig):
    from .experiments import label_noise as exp
    eps = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
    axes = fig.subplots(1, 3)
    for loss in exp.LOSSES:
        axes[0].plot(eps, [exp.optimum_margin(loss, e) for e in eps], "o-", ms=3, color=PALETTE[loss], label=loss)
        axes[1].plot(eps, [exp.tv_to_clean(loss, e) for e in eps], "o-", ms=3, color=PALETTE[loss], label=loss)
    axes[0].set_xlabel("flip rate ε (= cDPO's ε_s)")
    axes[0].set_ylabel("optimal β·Δ (nats)")
    axes[0].set_title("two responses, r₁ − r₂ = 2", fontsize=9)
    axes[1].set_xlabel("flip rate ε")
    axes[1].set_ylabel("TV to clean π*_β (probability)")
    axes[1].set_title("K = 5, β = 0.5", fontsize=9)
    sizes = [20, 40, 100, 300, 1000, 3000]
    stats = [exp.rdpo_finite_sample(n) for n in sizes]
    axes[2].plot(sizes, [s["finite"] for s in stats], "o-", ms=3, color=PALETTE["rdpo"], label="finite minimiser")
    axes[2].plot(sizes, [s["tv"] for s in stats], "s--", ms=3, color=PALETTE["rdpo"], label="TV to clean π* (finite)")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("sampled records n")
    axes[2].set_ylabel("fraction of 10 seeds / TV")
    axes[2].set_title("rDPO, ε = 0.2, K = 3", fontsize=9)
    for ax in axes:
        _legend(ax)


@figure("did", "did",
        "DID: chosen from π_ref, rejected from π_l, the π_ref draw wins; DPO lands on π_ref·(π_ref/π_l)^{1/β}, which "
        "is π*_β when π_l ∝ π_ref·e^{−r} (arXiv 2505.23761; K = 6, β = 1).")
def _did(fig):
    from .experiments import did as exp
    prob = exp.instance()
    uniform = torch.full((1, 6), -math.log(6), dtype=torch.float64)
    bars = {"π_ref": (prob.ref_logp, PALETTE["reference"]),
            "DPO, π_l ∝ π_ref·e^{−r}": (exp.optimum(prob, 1.0), PALETTE["dpo"]),
            "DPO, uniform π_l": (exp.optimum(prob, 1.0, uniform), PALETTE["other"])}
    ax = fig.subplots(1, 1)
    width = 0.25
    for i, (label, (logp, colour)) in enumerate(bars.items()):
        ax.bar([k + (i - 1) * width for k in range(6)], logp.exp()[0].tolist(), width, color=colour, label=label)
    star = exp.predicted(prob, 1.0).exp()[0].tolist()
    ax.plot(range(6), star, "k_", ms=16, mew=2, label="π*_β closed form")
    ax.set_xlabel("response y")
    ax.set_ylabel("π(y) (probability)")
    _legend(ax)


@figure("displacement", "displacement",
        "Likelihood displacement: with shared parameters DPO lowers the chosen response from step one while its loss "
        "falls; a logit table cannot (arXiv 2410.08847; DPO β = 1, SGD).")
def _displacement(fig):
    from .experiments import displacement as exp
    axes = fig.subplots(1, 2)
    steps, probs, loss = exp.razin(2000, every=10)
    names = ("chosen y+", "rejected y−", "unseen z")
    for i, style in enumerate(("-", "--", ":")):
        axes[0].plot(steps.numpy(), probs[:, i].numpy(), style, color=PALETTE["dpo"], label=f"π({names[i]})")
    axes[0].plot(steps.numpy(), loss.numpy(), color=PALETTE["other"], label="DPO loss (nats)")
    axes[0].set_title("LogLinear, shared hidden vector (lr 0.1)", fontsize=9)
    steps, probs = exp.tabular(3000, every=10)
    for i, style in enumerate(("-", "--", ":")):
        axes[1].plot(steps.numpy(), probs[:, i].numpy(), style, color=PALETTE["dpo"], label=f"π({names[i]})")
    axes[1].set_title("logit table, π_ref = (0.2, 0.5, 0.3) (lr 0.01)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("SGD step")
        ax.set_ylabel("probability / loss (nats)")
        _legend(ax)


@figure("selfplay", "selfplay",
        "Self-play on an intransitive 3-cycle: the last Hedge iterate cycles, its running average converges to the "
        "von Neumann winner (2/7, 1/7, 4/7) (arXiv 2405.00675, 2404.03715; η = 0.1).")
def _selfplay(fig):
    from .experiments import selfplay as exp
    steps, last, average = exp.hedge(0.1, 20000, record_every=20)
    axes = fig.subplots(1, 2)
    for i, style in enumerate(("-", "--", ":")):
        axes[0].plot(steps.numpy() / 1000, last[:, i].numpy(), style, color=PALETTE["other"], lw=0.8,
                     label=f"last iterate π({i + 1})")
        axes[0].plot(steps.numpy() / 1000, average[:, i].numpy(), style, color=PALETTE["dpo"], label=f"average π̄({i + 1})")
        axes[0].axhline(exp.WINNER[i], color=PALETTE["reference"], lw=0.6)
    axes[0].set_xlabel("self-play step (thousands)")
    axes[0].set_ylabel("probability")
    axes[0].set_title("Hedge from uniform (grey: the winner)", fontsize=9)
    taus = [2.0 ** k for k in range(2, -8, -1)]
    path = exp.regularised_path(tuple(taus))
    for i, style in enumerate(("-", "--", ":")):
        axes[1].plot(taus, path[:, i].numpy(), style + "o", ms=3, color=PALETTE["ipo"], label=f"π*_τ({i + 1})")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("regularisation τ (dimensionless)")
    axes[1].set_ylabel("probability")
    axes[1].set_title("regularised equilibrium path (uniform π_ref)", fontsize=9)
    for ax in axes:
        _legend(ax)


@figure("granularity", "granularity",
        "Token-level autoregressive DPO on response-level BT labels misses π*_β; one feedback segment per response "
        "recovers it (arXiv 2602.09533; depth-2 tree, β = 1).")
def _granularity(fig):
    from .experiments import granularity as exp
    bars = {"π*_β (closed form)": (exp.target(), PALETTE["reference"]),
            "ADPO, one segment (= DPO)": (exp.best_policy(1), PALETTE["dpo"]),
            "ADPO, token level": (exp.best_policy(0), PALETTE["other"])}
    ax = fig.subplots(1, 1)
    width = 0.25
    for i, (label, (probs, colour)) in enumerate(bars.items()):
        ax.bar([k + (i - 1) * width for k in range(4)], probs.tolist(), width, color=colour, label=label)
    ax.set_xticks(range(4), exp.TREE)
    ax.set_xlabel("response (two tokens)")
    ax.set_ylabel("π(y) (probability)")
    _legend(ax)


@figure("samplers", "samplers",
        "Exact-gradient online DPO: uniform pair sampling converges linearly, the mixed samplers Mix-R and Mix-P "
        "much faster (arXiv 2409.19605; K = 20, β = 3, SGD lr 10 and Newton's lr 9.9307).")
def _samplers(fig):
    from .experiments import samplers as exp
    colours = {"unif": PALETTE["reference"], "mix_r": PALETTE["dpo"], "mix_p": PALETTE["other"]}
    axes = fig.subplots(1, 2, sharey=True)
    for ax, lr in zip(axes, (10.0, 9.9307), strict=True):
        for sampler in exp.SAMPLERS:
            found = exp.run(sampler, 25, lr=lr)
            ax.semilogy(range(len(found)), [max(v, 1e-17) for v in found], "o-", ms=3, color=colours[sampler],
                        label={"unif": "Unif", "mix_r": "Mix-R", "mix_p": "Mix-P"}[sampler])
        ax.set_xlabel("SGD iteration")
        ax.set_ylabel("Param Diff (reward units)")
        ax.set_title(f"lr {lr:g}", fontsize=9)
        _legend(ax)


@figure("three_d", "three_d",
        "The '3D properties' toy, reconstructed (arXiv 2406.07327; MLP, 4 prompts × 10 responses, DPO β = 0.1): the "
        "rejected likelihood plunges, but the unseen responses lose mass instead of gaining it.")
def _three_d(fig):
    from .experiments import three_d as exp
    found = exp.run(epochs=500, every=10)
    steps = found["steps"].numpy()
    axes = fig.subplots(1, 2)
    for key, style, label in (("chosen_logp_change", "-", "chosen"), ("rejected_logp_change", "--", "rejected")):
        axes[0].plot(steps, found[key].mean(1).numpy(), style, color=PALETTE["dpo"], label=f"{label} (mean of 5 seeds)")
    axes[0].set_xlabel("epoch (full batch, Adam lr 1e-3)")
    axes[0].set_ylabel("change of log-probability (nats)")
    axes[0].set_title("record-mean log-probability change", fontsize=9)
    axes[1].plot(steps, found["chosen_mass"].mean(1).numpy(), color=PALETTE["dpo"], label="chosen probability")
    axes[1].plot(steps, found["unseen_mass_gain"].mean(1).numpy(), ":", color=PALETTE["other"],
                 label="unseen-mass gain")
    axes[1].set_xlabel("epoch (full batch, Adam lr 1e-3)")
    axes[1].set_ylabel("probability")
    axes[1].set_title("mass on chosen and on never-seen responses", fontsize=9)
    for ax in axes:
        _legend(ax)
