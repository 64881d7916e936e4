"""A paper chapter's set-up and shared plumbing, written once so that each chapter reads as text.

The first code cell of a chapter is one call::

    ch = start("urd", PROFILE, CATEGORIES, options=OPTIONS, fit=FIT, data_root=DATA_ROOT, ...)
    urd = ch.train()                           # the chapter's method, one run per category (reused by key)
    rd = ch.train("rd")                        # another method under the same profile, data and categories
    report = ch.ablation(VARIANTS, ["brick"], [111, 112, 113], metrics=["i_auroc"], image_size=64,
                         budget={"steps": 40})   # an AblationReport over the grid's long table

``start`` sets the book's display style and logging, the thread count, merges the method's profile with the
chapter's overrides and generates (or reuses) the embedded benchmark at the profile's image size; the chapter's
settings travel with the :class:`Chapter` so that no cell repeats them.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from rdlib.claims import BOOK_DESIGN, AblationReport, ClaimLog
from rdlib.experiments import CategoryRuns, run_grid, train_categories
from rdlib.runs import load_run

QUIET = ("rdlib.experiments",        # a failed run is a row of the chapter's tables instead of a log line
         "rdlib.data.textures")      # the texture source is in each chapter's protocol table


@dataclass
class Chapter:
    """One chapter's method, profile, data and run settings (what :func:`start` resolved)."""

    method: str
    profile: str
    categories: list
    options: dict                    # the profile's options with the chapter's overrides
    fit: dict                        # the profile's loop settings with the chapter's overrides
    root: object                     # data root: the embedded benchmark's folder or the reader's dataset
    data_name: str
    device: str
    overrides: dict = field(default_factory=dict)        # the chapter's OPTIONS (on top of the profile)
    fit_overrides: dict = field(default_factory=dict)    # the chapter's FIT
    data_root: object = None         # as given: None for the embedded benchmark
    data_format: str | None = None
    sizes: tuple = (80, 80, 30)      # embedded benchmark: training images, normal and per-defect test images
    runs_dir: object = None
    progress: bool = True
    workers: int = 1
    name: str = ""                   # prefix of the chapter's glue keys (default: the method)
    plateaus: dict = field(default_factory=dict)         # label -> rdlib.plateau.Plateau read in this chapter
    verdicts: list = field(default_factory=list)         # every rdlib.claims.Verdict this chapter's versus judged
    logs: list = field(default_factory=list)             # the ClaimLogs of its ablation reports
    findings: dict = field(default_factory=dict)         # key -> the text of each finding glued
    _glued_designs: set = field(default_factory=set, repr=False)   # ablation glue prefixes already glued

    @property
    def image_size(self) -> int:
        return int(self.options["image_size"])

    @property
    def teacher(self) -> str:
        return self.options["teacher"]

    def train(self, method: str | None = None, options: dict | None = None, categories=None,
              fit: dict | None = None) -> CategoryRuns:
        """One run per category (trained, or reused by key): the chapter's method with its overrides, or another
        ``method`` under the same profile with ``options`` on top of that method's profile; ``fit``: loop settings
        for these runs only (e.g. ``{"eval_every": 5}`` for learning curves, which leaves the key unchanged)."""
        own = method is None or method == self.method
        return train_categories(self.method if own else method, self.profile, self.root,
                                self.categories if categories is None else categories,
                                self.overrides if own else (options or {}),
                                {**(self.fit_overrides if own else {}), **(fit or {})},
                                self.data_format, self.runs_dir, self.device, self.progress if own else False,
                                self.workers)

    def root_at(self, image_size: int | None):
        """The data root for runs at ``image_size`` (None: the chapter's): the embedded benchmark is generated (or
        reused) at that size; a reader's dataset is resized by each run's data config."""
        if self.data_root is not None or image_size in (None, self.image_size):
            return self.root
        from rdlib.data import EmbeddedConfig, generate_embedded

        n_train, n_good, n_defect = self.sizes
        return generate_embedded(cfg=EmbeddedConfig(size=int(image_size), n_train=n_train, n_test_good=n_good,
                                                    n_test_per_defect=n_defect))

    def plateau(self, runs: CategoryRuns, label: str, metric: str = "i_auroc", finding: str | None = "plateau",
                show: bool = True):
        """Read ``label``'s plateau from the learning curves its ``runs`` logged (:func:`rdlib.plateau.plateau`),
        show the curves with the mean and where it settles, the per-category table and the sentence (glued as the
        ``finding``; ``show=False``: only the sentence, e.g. for RD's plateau in another method's chapter), and keep
        it: every verdict this chapter judges on ``label``'s runs (:meth:`versus`,
        :meth:`ablation`) then requires them to be converged. Returns the :class:`~rdlib.plateau.Plateau`."""
        from IPython.display import Markdown, display

        from rdlib.experiments import learning_curves
        from rdlib.plateau import plateau
        from rdlib.viz import learning_curves_figure

        curves = learning_curves(runs)
        p = plateau(curves, label, metric)
        self.plateaus[label] = p
        if curves.empty:
            display(Markdown(f"_{label}: no evaluation during training in this profile — its runs are not shown to "
                             "be converged, so no claim is judged on them._"))
        elif not show:
            display(Markdown(p.sentence))
        else:
            learning_curves_figure(curves, p)
            display(Markdown(p.sentence), p.table())
        if finding:
            self.finding(finding, p.sentence)
        return p

    def marked(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (a long table) with its ``converged`` column from this chapter's plateaus (:func:`rdlib.plateau.mark`)."""
        from rdlib.plateau import mark

        return mark(table, self.plateaus)

    def ablation(self, variants: dict[str, dict], categories, seeds, metrics, *, image_size: int | None = None,
                 budget: dict | None = None, rescored: dict | None = None, log: ClaimLog | None = None,
                 glue_prefix: str | None = None, curves_every: int | None = None,
                 skip: bool = False) -> AblationReport:
        """Every variant (``{label: options}`` on top of the chapter's options) × category × seed at
        ``image_size`` with the optimizer ``budget`` (options such as ``{"steps": 40}``; None values: the
        profile's) as an :class:`~rdlib.claims.AblationReport` (its ``grid``: the long table, marked converged or
        not; an empty one, and a line saying so, when ``categories`` is empty). ``rescored``: variants that re-score a trained variant
        (``run_grid``). ``curves_every``: the first seed's runs are evaluated every this many units of the budget
        while they train, and each variant's plateau is read from them (:func:`rdlib.plateau.plateau`; a rescored
        variant shares its source's); without it no run is shown converged and no verdict is judged.
        With ``glue_prefix`` the design is glued for the prose: ``<prefix>_cats``, ``_seeds``, ``_size``,
        ``_budget`` — once per prefix, by the first ablation that gives it (several ablations can share one design).
        ``skip``: this profile leaves the ablation to another (an empty report and a line saying so)."""
        from rdlib.experiments import learning_curves
        from rdlib.plateau import mark, plateau

        size = int(image_size or self.image_size)
        budget = {k: v for k, v in (budget or {}).items() if v is not None}
        base = {**self.overrides, "image_size": size, **budget}
        if glue_prefix and glue_prefix not in self._glued_designs:      # the design, once per prefix (run or not)
            self._glued_designs.add(glue_prefix)
            spent = " + ".join(str({**self.options, **budget}[k]) for k in (budget or self.budget_keys()))
            self.glue(**{f"{glue_prefix}_cats": ", ".join(categories) or "no category in this profile (the full "
                                                                          "profile runs them)",
                         f"{glue_prefix}_seeds": len(seeds), f"{glue_prefix}_size": f"{size}²",
                         f"{glue_prefix}_budget": spent})
        if skip or not categories:
            from IPython.display import Markdown, display

            why = "`SKIP_ABLATIONS`" if skip else "`ABLATION_CATEGORIES` is empty"
            display(Markdown(f"_{', '.join(rescored or variants)}: not run in this profile ({why}); the `full` "
                             "profile runs them._"))
            return AblationReport(self.method, pd.DataFrame(), metrics, log=log, min_design=BOOK_DESIGN)
        plateaus = {}

        def grid_of(seed_list, fit):
            return run_grid(self.method, self.profile, self.root_at(size), list(categories),
                            {k: {"options": {**base, **v}, "fit": fit} for k, v in variants.items()},
                            seeds=list(seed_list), data_format=self.data_format, runs_dir=self.runs_dir,
                            device=self.device, progress=self.progress, workers=self.workers, rescored=rescored)
        if curves_every:
            first = grid_of(seeds[:1], {**self.fit_overrides, "eval_every": curves_every})
            for label in variants:
                rows = first[(first.variant == label) & (first.status != "failed")]
                plateaus[label] = plateau(learning_curves(CategoryRuns(
                    {r.category: load_run(Path(r.run_dir)) for r in rows.itertuples()})), label)
            for label, (source, _) in (rescored or {}).items():
                plateaus[label] = plateaus[source]
        grid = mark(grid_of(seeds, self.fit_overrides), plateaus)
        from rdlib.results import load_paper_numbers

        report = AblationReport(self.method, grid, metrics, load_paper_numbers(), log=log, plateaus=plateaus,
                                min_design=BOOK_DESIGN)
        if all(report.log is not known for known in self.logs):
            self.logs.append(report.log)                  # its verdicts, as they are judged, for the conclusion
        return report

    def skipped_ablations(self, skip, names: dict[str, str], categories=(), prefix: str = "abl") -> dict[str, str]:
        """The ablations this profile leaves to the `full` one: ``skip`` (a chapter's SKIP_ABLATIONS, a list)
        checked against ``names`` (``{key: what the ablation is}``, e.g. ``{"table5": "Table 5 (bottleneck)"}``),
        with one sentence for the prose glued as ``<prefix>_skipped`` (``categories``: the ablations' categories;
        none means none runs). Returns ``{key: name}`` of the skipped ones (``key in`` it is ``ablation(skip=...)``)."""
        if isinstance(skip, str) or not all(isinstance(k, str) for k in skip):
            raise ValueError(f"SKIP_ABLATIONS must be a list of names, got {skip!r}; use any of {sorted(names)}")
        unknown = sorted(set(skip) - set(names))
        if unknown:
            raise ValueError(f"SKIP_ABLATIONS: unknown {unknown}; use any of {sorted(names)}")
        left = [names[k] for k in skip]
        which = ", ".join(left[:-1]) + (" and " if len(left) > 1 else "") + (left[-1] if left else "")
        if not categories:
            text = "This profile runs none of them (no ablation categories)."
        elif left:
            text = (f"This build leaves {which} to the full profile (SKIP_ABLATIONS): at the design a verdict needs, "
                    f"{'its' if len(left) == 1 else 'their'} runs would take the CPU book over its 90-minute budget.")
        else:
            text = "Every ablation runs in this build."
        self.glue(**{f"{prefix}_skipped": text})
        return dict(zip(skip, left))

    def glue(self, **values) -> None:
        """Glue each value as text for the prose (``{glue:text}`name```), e.g. ``ch.glue(rdre_size="128²")``."""
        from myst_nb import glue

        for name, value in values.items():
            glue(name, str(value), display=False)

    def finding(self, key: str, text: str) -> None:
        """Glue one line of the chapter's findings box (``{glue:md}`<name>_find_<key>``` in its first section),
        computed where the evidence is."""
        from IPython.display import Markdown
        from myst_nb import glue

        glue(f"{self.name or self.method}_find_{key}", Markdown(text), display=False)
        self.findings[key] = text

    def conclusion(self, label: str) -> None:
        """The chapter's closing paragraph (:func:`rdlib.findings.conclusion_text`) from the same objects as its
        body — its plateaus, every verdict it judged, its detection finding — shown (nothing returned: a notebook's
        last expression would print it a second time)."""
        from IPython.display import Markdown, display

        from rdlib.findings import conclusion_text

        scale = f"{self.image_size}² on the {self.data_name} with the {self.teacher} teacher"
        verdicts = self.verdicts + [v for log in self.logs for v in log.verdicts]
        text = conclusion_text(label, scale, self.plateaus, verdicts, self.findings.get("detection", ""))
        display(Markdown(text))

    def results(self, label: str, trained: CategoryRuns, others: dict[str, CategoryRuns],
                metrics=("i_auroc", "p_auroc"), chart=("i_auroc",)) -> pd.DataFrame:
        """The chapter's results section: the method's (``label``) table per category (readable labels), the chance levels of
        these test sets, I-AUROC and P-AUROC beside ``others`` (``{"RD": runs, "kNN": runs}``) as a table and a
        figure, glued as the ``detection`` finding. Returns the method's :func:`results_table`."""
        from IPython.display import Markdown, display

        from rdlib.experiments import results_table, side_by_side
        from rdlib.results import METRIC_LABELS, chance_sentence, readable
        from rdlib.viz import category_figure

        results = results_table(trained)
        display(readable(results))
        display(Markdown(chance_sentence({cat: run.predictions() for cat, run in trained.runs.items()})))
        tables = {label: results, **{k: results_table(v) for k, v in others.items()}}
        side = side_by_side(tables, metrics)
        display(side)
        category_figure(side, list(tables), f"Per category: {', '.join(tables)} (kNN: the training-free reference)",
                        [METRIC_LABELS.get(m, m) for m in chart])
        self.finding("detection", self.mean_sentence(tables))
        return results

    def replicate(self, label: str, seeds, categories=None, method: str | None = None,
                  options: dict | None = None, main: CategoryRuns | None = None) -> pd.DataFrame:
        """The long table of the chapter's method (or ``method`` with ``options``, as :meth:`train`) at every seed of
        ``seeds`` on ``categories`` (default: the chapter's), as variant ``label``, after the rows of ``main`` (the
        main runs, one seed on every category): the design a verdict needs (≥ 3 categories × 3 seeds). Runs already
        trained — the main runs' seed — are reused by key. With ``main`` and a plateau of ``label`` that is not
        converged (:meth:`plateau`), no other seed is trained: no verdict could be judged on them."""
        from rdlib.experiments import long_table

        if main is not None and label in self.plateaus and not self.plateaus[label].converged:
            return long_table(main, label)
        own = method is None or method == self.method
        grid = run_grid(self.method if own else method, self.profile, self.root,
                        list(self.categories if categories is None else categories),
                        {label: {"options": self.overrides if own else (options or {}),
                                 "fit": self.fit_overrides if own else {}}},
                        seeds=list(seeds), data_format=self.data_format, runs_dir=self.runs_dir, device=self.device,
                        progress=False, workers=self.workers)
        if main is None:
            return grid
        rows = long_table(main, label)
        grid = grid[grid.status != "failed"]
        if rows.empty:
            return grid
        extra = ~grid.set_index(["category", "seed"]).index.isin(rows.set_index(["category", "seed"]).index)
        return pd.concat([rows, grid[extra]], ignore_index=True)

    def versus(self, trained, other, label: str, other_label: str, claim: str, metrics=("i_auroc", "p_auroc"),
               paper_claim: bool = True) -> None:
        """Judge "``label`` beats ``other_label``" on each of ``metrics`` (:func:`rdlib.claims.judge`, as the paper's
        claim at this budget unless ``paper_claim=False``) on the two methods' runs (``CategoryRuns`` or long tables,
        e.g. :meth:`replicate`), each run marked converged or not by the chapter's plateaus (:meth:`plateau`); shows
        the sentences and glues them as the ``vs_<other_label>`` finding. ``claim``: what is compared, e.g. "(same
        data and teacher)"."""
        from IPython.display import Markdown, display

        from rdlib.claims import judge
        from rdlib.results import METRIC_LABELS

        table = self.marked(pd.concat([_rows(trained, label), _rows(other, other_label)], ignore_index=True))
        verdicts = [judge(table, label, other_label, m, f"{label} beats {other_label} on "
                          f"{METRIC_LABELS.get(m, m)} {claim}".strip(), paper_claim=paper_claim,
                          min_design=BOOK_DESIGN) for m in metrics]
        self.verdicts += verdicts
        sentences = [v.sentence for v in verdicts]
        display(Markdown("\n\n".join(sentences)))
        self.finding(f"vs_{other_label.lower()}", " ".join(sentences))

    def equivalence(self, name: str):
        """The committed equivalence check against the official repository ``name`` (:mod:`rdlib.equivalence`):
        shows its sentence, glues it as the ``equivalence`` finding and returns the per-component table."""
        from IPython.display import Markdown, display

        from rdlib.equivalence import equivalence_table

        sentence, table = equivalence_table(name)
        display(Markdown(sentence))
        self.finding("equivalence", sentence)
        return table

    def paper_vs_ours(self, results: pd.DataFrame, chapter: str | None = None) -> pd.DataFrame:
        """The paper's MVTec AD means beside our mean row of ``results`` (:func:`rdlib.results.paper_vs_ours`)."""
        from rdlib.results import paper_vs_ours

        return paper_vs_ours(chapter or self.method, results.loc["mean"].to_dict(), self.image_size)

    def protocol(self, runs: CategoryRuns | int, chapter: str | None = None, **extra) -> pd.DataFrame:
        """The paper's protocol beside the one these runs followed (:func:`rdlib.results.protocol_table`; ``runs``:
        the runs, or the number of categories)."""
        from rdlib.results import protocol_table

        return protocol_table(chapter or self.method, self.method, self.options, self.fit, self.data_name, runs,
                              **extra)

    def cost(self, trained: dict[str, CategoryRuns]) -> pd.DataFrame:
        """Inference cost at the chapter's size and training time per step (:func:`rdlib.experiments.cost_table`)."""
        from rdlib.experiments import cost_table

        return cost_table(trained, self.image_size, self.device)

    def mean_sentence(self, tables: dict, metric: str = "i_auroc") -> str:
        """"mean I-AUROC 71.2 for URD, 70.1 for RD and 78.3 for the kNN reference over 5 categories": ``tables``:
        ``{label: results_table}``."""
        from rdlib.results import METRIC_LABELS

        parts = [f"{t.loc['mean', metric]:.1f} for {label}" for label, t in tables.items() if "mean" in t.index]
        n = max((len(t) - 1 for t in tables.values()), default=0)
        return (f"mean {METRIC_LABELS.get(metric, metric)} " + ", ".join(parts[:-1])
                + (" and " if len(parts) > 1 else "") + parts[-1] + f" over {n} categories at {self.image_size}²"
                if parts else "no runs finished")

    def budget_keys(self) -> list[str]:
        """The options that set the method's optimizer budget (steps or epochs, per stage), in stage order."""
        from rdlib.methods.base import BUDGET_OPTIONS

        return [k for k in BUDGET_OPTIONS if k in self.options]


def _rows(runs, label: str) -> pd.DataFrame:
    """Runs as rows of the long table under the variant ``label``: ``CategoryRuns`` (one seed) or a long table."""
    from rdlib.experiments import long_table

    if isinstance(runs, pd.DataFrame):
        return runs.assign(variant=label)
    return long_table(runs, label)


def start(method: str, profile: str, categories, *, options: dict | None = None, fit: dict | None = None,
          data_root=None, data_format: str | None = None, n_train: int = 80, n_test_good: int = 80,
          n_test_per_defect: int = 30, runs_dir=None, progress: bool = True, workers: int = 1,
          announce: bool = True, name: str | None = None) -> Chapter:
    """Set up a chapter (see the module docstring); prints the data, profile, loop and device it resolved.
    ``name``: the prefix of the chapter's glue keys when it is not the method's (e.g. the comparison)."""
    from rdlib.data import EmbeddedConfig, generate_embedded
    from rdlib.methods import method_profile
    from rdlib.viz import book_style

    logging.basicConfig(level=logging.WARNING)
    for logger in QUIET:
        logging.getLogger(logger).setLevel(logging.ERROR)
    book_style(precision=1)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    prof = method_profile(method, profile)
    opts, loop = {**prof["options"], **(options or {})}, {**prof["fit"], **(fit or {})}
    if data_root is None:
        root = generate_embedded(cfg=EmbeddedConfig(size=int(opts["image_size"]), n_train=n_train,
                                                    n_test_good=n_test_good, n_test_per_defect=n_test_per_defect))
        data_name = f"embedded benchmark ({root.name})"      # "on the {data_name}" in a sentence
    else:
        root, data_name = data_root, f"dataset at {data_root}"
        if not Path(root).exists():
            raise FileNotFoundError(f"DATA_ROOT {root}: no such folder; give the dataset's root folder or None for "
                                    "the embedded benchmark")
        from rdlib.data import verify

        # a missing category, split file or mask stops the chapter here, at its first cell, naming the path
        verify(root, data_format, list(categories), check_pixels=False)
    ch = Chapter(method, profile, list(categories), opts, loop, root, data_name,
                 "cuda" if torch.cuda.is_available() else "cpu", dict(options or {}), dict(fit or {}), data_root,
                 data_format, (n_train, n_test_good, n_test_per_defect), runs_dir, progress, workers, name or method)
    if announce:
        print(f"data: {data_name}; profile {profile!r}: {opts}; loop {loop}; device: {ch.device}")
    from rdlib import plateau

    ch.glue(plateau_tol=f"{plateau.TOL:g}", plateau_flat=f"{plateau.FLAT:.0%}", plateau_evals=plateau.TAIL + 1,
            plateau_drift=f"{plateau.DRIFT:g}",
            claim_design=f"{BOOK_DESIGN[0]} categories × {BOOK_DESIGN[1]} seeds", chapter_size=f"{ch.image_size}²")
    return ch


__all__ = ["Chapter", "start"]
