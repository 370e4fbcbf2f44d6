"""The ``segmint`` command: a thin shell over ``pipeline.run``, ``predict`` and ``synth``.

Domain errors become one red paragraph and exit code 2; anything unexpected says so and
exits 1. ``-v`` shows tracebacks and debug logging.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .config import Settings
from .exceptions import SegmintError

# Options several commands share, declared once.
ConfigOption = Annotated[Path | None, typer.Option(help="TOML or YAML settings file.")]
FeaturesOption = Annotated[str | None, typer.Option(help="Comma-separated features to use.")]
KindOption = Annotated[str | None, typer.Option(help="auto | transactions | customers")]
MapOption = Annotated[list[str] | None, typer.Option("--map", help="canonical=column, repeatable.")]
ObservationEndOption = Annotated[str | None, typer.Option(help="ISO date ending the window.")]
SeedOption = Annotated[int | None, typer.Option(help="Random seed.")]
DateFormatOption = Annotated[
    str | None,
    typer.Option(
        help="strptime format of the dates, e.g. '%m/%d/%Y' (default: detected; asked for "
        "when day-first and month-first both fit)."
    ),
]
DecimalOption = Annotated[
    str | None,
    typer.Option(help="Decimal separator of the numbers, '.' or ',' (default: per column)."),
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Customer segmentation: order lines or customer tables in, actionable segments out.",
)
err = Console(stderr=True)
out = Console()
_state = {"verbose": False}


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Debug logs, tracebacks.")
    ] = False,
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _parse_map(items: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise SegmintError(
                f"--map expects canonical=column (e.g. customer_id=Client), got {item!r}"
            )
        k, v = item.split("=", 1)
        result[k.strip()] = v.strip()
    return result


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


class _Bar:
    """Rich progress: one bar over the pipeline's stages, the current stage as text."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        self.stages = stages
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not err.is_terminal,
        )
        self.task = self.progress.add_task("starting", total=len(stages))

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, detail: str) -> None:
        if detail == "done":
            self.progress.advance(self.task)
        else:
            label = stage if detail == "start" else f"{stage}: {detail}"
            self.progress.update(self.task, description=label)
        if not err.is_terminal and detail == "start":
            err.print(f"[dim]… {stage}[/dim]")


@app.command()
def run(
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Order lines and/or a customer table.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    config: ConfigOption = None,
    features: FeaturesOption = None,
    kind: KindOption = None,
    k: Annotated[int | None, typer.Option("--k", help="Fix the number of segments (>= 2).")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="kmeans | minibatch | bisecting | ward | average | complete | gmm | dbscan | "
            "hdbscan | ensemble | kprototypes | all (compare every method)"
        ),
    ] = None,
    k_min: Annotated[int | None, typer.Option(help="Smallest k to try.")] = None,
    k_max: Annotated[int | None, typer.Option(help="Largest k to try.")] = None,
    column: MapOption = None,
    observation_end: ObservationEndOption = None,
    seed: SeedOption = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter (default: sniffed).")] = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
    memory_limit: Annotated[
        str | None, typer.Option(help="Cap the query engine's memory, e.g. 3GB (spills beyond).")
    ] = None,
    charts: Annotated[
        bool, typer.Option("--charts", help="Also write each chart as a standalone file.")
    ] = False,
) -> None:
    """Segment customers and write the run folder (tables, model, report)."""

    def go() -> None:
        from .pipeline import STAGES
        from .pipeline import run as run_pipeline

        base = Settings.from_file(config) if config else Settings()
        overrides: dict[str, Any] = {
            "inputs": [str(p) for p in inputs] if inputs else None,
            "out": str(out_dir) if out_dir else None,
            "features": _split(features),
            "kind": kind,
            "observation_end": observation_end,
            "seed": seed,
            "delimiter": delimiter,
            "date_format": date_format,
            "decimal": decimal,
            "memory_limit": memory_limit,
            "report_charts": charts or None,
            "columns": _parse_map(column) or None,
            "clustering": {"k": k, "k_min": k_min, "k_max": k_max, "algorithm": algorithm},
        }
        settings = base.merged(overrides)
        if not settings.inputs:
            raise SegmintError(
                "no input file: give one on the command line or in the config's 'inputs'."
            )
        t0 = time.perf_counter()
        from .store import output_folder

        # the output folder is checked, locked and probed before the pipeline runs
        with output_folder(settings.out, "run"), _Bar((*STAGES, "write")) as bar:
            result = run_pipeline(settings, progress=bar)
            bar("write", "start")
            folder = result.save(settings.out)
            bar("write", "done")
        _summary(result, folder, time.perf_counter() - t0)

    _guard(go)


def _summary(result: Any, folder: Path, seconds: float) -> None:
    m = result.manifest
    q = m["rows"]["quarantined"]
    out.print(
        f"[bold green]{m['customers']:,} customers → {m['k']} segments[/] in {seconds:.1f} s "
        f"(silhouette {m['metrics']['silhouette']:.3f})"
    )
    out.print(
        f"rows: {m['rows']['read']:,} read = {m['rows']['kept']:,} kept + "
        f"{sum(q.values()):,} quarantined"
        + (f" ({', '.join(f'{r}: {n:,}' for r, n in q.items())})" if q else "")
    )
    if m["selection"].get("compared"):
        out.print(f"method: {m['selection']['compared']} (comparison.csv)")
    out.print(f"why k = {m['k']}: {m['selection']['reason']}")
    for s in result.segments.itertuples():
        rev = f", {s.share_revenue:.0%} of revenue" if hasattr(s, "share_revenue") else ""
        out.print(f"  {s.segment}: {s.segment_name} — {s.share_customers:.0%} of customers{rev}")
    out.print(f"report: {folder / 'report.html'}")


@app.command()
def compare(
    inputs: Annotated[list[Path], typer.Argument(help="Order lines and/or a customer table.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    config: ConfigOption = None,
    features: FeaturesOption = None,
    kind: KindOption = None,
    column: MapOption = None,
    seed: SeedOption = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
) -> None:
    """Run every clustering method on the same features, compare them (comparison.csv,
    agreement.csv, report) and keep the recommended one as the run's segmentation."""
    run(
        inputs=inputs,
        out_dir=out_dir,
        config=config,
        features=features,
        kind=kind,
        algorithm="all",
        column=column,
        seed=seed,
        date_format=date_format,
        decimal=decimal,
    )


@app.command()
def predict(
    data: Annotated[list[Path], typer.Argument(help="New order lines and/or customer table.")],
    run_dir: Annotated[Path, typer.Option("--run", help="A run folder made by 'segmint run'.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Scores: .csv or .parquet.")],
    observation_end: ObservationEndOption = None,
    algorithm: Annotated[
        str | None,
        typer.Option(help="Check that the run used this method (the run's model decides)."),
    ] = None,
) -> None:
    """Assign new customers to the segments of a saved run (any clustering method)."""

    def go() -> None:
        from .predict import load_run_model, predict_detailed

        suffix = out_file.suffix.lower()
        if suffix not in {".csv", ".parquet"}:
            raise SegmintError(f"--out must end in .csv or .parquet, got {out_file.name!r}")
        model = load_run_model(run_dir)
        out.print(_provenance(model.meta))
        used = model.meta.get("algorithm", "kmeans")
        if algorithm and algorithm != used:
            raise SegmintError(
                f"the run in {run_dir} was segmented with {used!r}, not {algorithm!r}: a "
                f"model predicts with the method it was fitted with. Make a run with "
                f"'segmint run ... --algorithm {algorithm}' and predict with that."
            )
        pred = predict_detailed(model, [str(p) for p in data], observation_end=observation_end)
        extra = [
            c
            for c in pred.scores
            if c.startswith("prob_") or c in ("low_confidence", "churn_probability")
        ]
        scores = pred.scores[["customer_id", "segment", "segment_name", "confidence", *extra]]
        out_file.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            from .csvsafe import write_csv

            write_csv(scores, out_file)  # ids starting with = + - @ cannot run as formulas
        else:
            scores.to_parquet(out_file, index=False)
        rows = pred.ingested.rows
        q = rows["quarantined"]
        out.print(
            f"[bold green]{len(scores):,} customers scored[/] → {out_file} "
            f"(rows: {rows['read']:,} read, {rows['kept']:,} kept, {sum(q.values()):,} quarantined)"
        )
        if q:
            from .store import write_quarantine

            qpath = out_file.with_name(out_file.stem + ".quarantine.parquet")
            write_quarantine(pred.ingested, qpath)
            out.print(f"rejected rows with their reasons → {qpath}")
        if pred.info.get("customers_only_returns"):
            n = pred.info["customers_only_returns"]
            out.print(f"{n:,} customer(s) with returns but no purchase were not scored")

    _guard(go)


@app.command()
def trust(
    run_dir: Annotated[Path, typer.Argument(help="A run folder copied from another machine.")],
) -> None:
    """Check a run's model against segmint's allow-list (without loading it) and sign it
    with this machine's key. Only for runs whose origin you have checked."""

    def go() -> None:
        from .model import trust_model_file

        if not run_dir.is_dir():
            raise SegmintError(f"{run_dir}: not a folder; give the run folder to trust.")
        info = trust_model_file(run_dir / "model.skops")
        out.print(f"types in {info['path']} (all on segmint's allow-list):")
        for name in info["types"]:
            out.print(f"  {name}", highlight=False)
        out.print(f"before: {info['before']}")
        out.print(
            f"[bold green]signed[/] with this machine's key {info['key_id']} "
            f"(from {escape(info['key_source'])}) → {info['path']}.sig"
        )

    _guard(go)


@app.command()
def generate(
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 10_000,
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="Order lines: .parquet or .csv.")
    ] = Path("orders.parquet"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write realistic synthetic order lines with planted customer types (and their truth)."""

    def go() -> None:
        from .synth import generate_orders

        t0 = time.perf_counter()
        info = generate_orders(customers, out_file, seed=seed)
        out.print(
            f"[bold green]{info['lines']:,} order lines[/] for {customers:,} customers → "
            f"{out_file} in {time.perf_counter() - t0:.1f} s; planted types → {info['types_path']}"
        )

    _guard(go)


@app.command()
def clv(
    data: Annotated[Path, typer.Argument(help="Order lines: CSV, Parquet or Excel.")],
    calibration_end: Annotated[
        str,
        typer.Option(
            help="ISO date: the last day of the calibration period (inclusive, as in FHL and "
            "lifetimes); fit on the orders up to and on it, test on the orders after it."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    holdout_end: Annotated[
        str | None,
        typer.Option(help="ISO date: the last day of the holdout (default: the last order's day)."),
    ] = None,
    time_unit: Annotated[str | None, typer.Option(help="days | weeks (default: weeks).")] = None,
    config: ConfigOption = None,
    column: MapOption = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
) -> None:
    """Fit BG/NBD + Gamma-Gamma on a calibration period and check them on the holdout."""

    def go() -> None:

        from .analyses import validate_clv

        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "clv": {"time_unit": time_unit},
                "columns": _parse_map(column) or None,
                "date_format": date_format,
                "decimal": decimal,
            }
        )
        cal = _iso_date(calibration_end, "--calibration-end")
        hold = _iso_date(holdout_end, "--holdout-end") if holdout_end else None
        from .store import output_folder, save_clv

        with output_folder(out_dir, "clv"):
            res = validate_clv(str(data), cal, settings, holdout_end=hold)
            save_clv(res, out_dir)
        _print_clv(res)
        out.print(
            f"→ {out_dir}/clv_params.json, clv_holdout.csv, clv_holdout.html, clv_customers.parquet"
        )

    _guard(go)


@app.command("track")
def track_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Order lines (and optionally attributes).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    every: Annotated[str, typer.Option(help="Snapshot every month or quarter.")] = "month",
    refit: Annotated[
        bool, typer.Option(help="Refit k-means at each snapshot (IDs matched, Hungarian).")
    ] = False,
    config: ConfigOption = None,
    k: Annotated[int | None, typer.Option("--k", help="Fix the number of segments.")] = None,
    column: MapOption = None,
    seed: SeedOption = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
) -> None:
    """Segments over time: snapshots, migration (Sankey), size/revenue trends, drift alerts."""

    def go() -> None:
        from .analyses import track_segments
        from .pipeline import STAGES
        from .store import save_tracking

        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "inputs": [str(p) for p in inputs],
                "out": str(out_dir / "run"),
                "seed": seed,
                "columns": _parse_map(column) or None,
                "date_format": date_format,
                "decimal": decimal,
                "clustering": {"k": k},
            }
        )
        if every not in {"month", "quarter"}:
            raise SegmintError(f"--every must be 'month' or 'quarter', got {every!r}")
        from .store import output_folder

        with output_folder(out_dir, "track"):
            with _Bar((*STAGES, "snapshots")) as bar:
                tracking, result = track_segments(settings, every, refit=refit, progress=bar)
                bar("snapshots", "done")
            save_tracking(tracking, out_dir, every, settings, run=result)  # run/ inside
        flows = tracking.flows
        out.print(
            f"[bold green]{len(tracking.snapshots)} snapshots[/] ({every}, {tracking.mode}); "
            f"{result.k} segments; customers {flows.customers.iloc[0]:,} → "
            f"{flows.customers.iloc[-1]:,}"
        )
        for a in tracking.alerts[:10]:
            out.print(f"[yellow]alert:[/] {a}")
        if len(tracking.alerts) > 10:
            out.print(f"… and {len(tracking.alerts) - 10} more alerts (track.json)")
        out.print(f"report: {out_dir / 'track_report.html'} (the fitted run: {out_dir / 'run'})")

    _guard(go)


def _iso_date(text: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise SegmintError(f"{option} must be an ISO date like 2011-06-01, got {text!r}") from None


def _print_clv(res: Any) -> None:
    from rich.table import Table

    d = res.diagnostics
    h = d["holdout"]
    out.print(
        f"[bold]CLV models[/] fitted on {d['bgnbd']['n']:,} customers through "
        f"{res.calibration_end.date()} ({res.time_unit}); holdout through "
        f"{res.holdout_end.date()}"
    )
    t = Table(box=None, pad_edge=False)
    for c in ("model", "param", "estimate", "std. error", "95% CI"):
        t.add_column(c, justify="left" if c in {"model", "param"} else "right")
    for r in res.params.itertuples():
        finite = all(v == v and abs(v) != float("inf") for v in (r.ci_low, r.ci_high))
        ci = f"{r.ci_low:,.4g} – {r.ci_high:,.4g}" if finite else "–"
        se = f"{r.se:,.4g}" if r.se == r.se else "n/a"
        t.add_row(r.model, r.param, f"{r.estimate:,.4g}", se, ci)
    out.print(t)
    for model in ("bgnbd", "gamma_gamma"):
        for w in d[model].get("warnings", []):
            out.print(f"[yellow]warning ({model}):[/] {w}")
    out.print(
        f"holdout purchases: predicted {h['predicted_total']:,.0f} vs actual "
        f"{h['actual_total']:,.0f} ({h['relative_error_total']:+.1%}); mean absolute error "
        f"{h['mean_absolute_error']:.2f} per customer; correlation {h['correlation']:.2f}"
    )
    ht = Table(box=None, pad_edge=False)
    for c in ("repeat purchases (calibration)", "customers", "actual", "predicted"):
        ht.add_column(c, justify="right")
    for r in res.holdout.itertuples():
        ht.add_row(
            str(r.calibration_repeat_purchases),
            f"{r.customers:,}",
            f"{r.actual:.2f}",
            f"{r.predicted:.2f}",
        )
    out.print(ht)


analyze_app = typer.Typer(
    no_args_is_help=True, help="Statistical analyses on a customer table (no segmentation)."
)
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("effect")
def analyze_effect(
    data: Annotated[Path, typer.Argument(help="Customer table: CSV, Parquet or Excel.")],
    by: Annotated[str, typer.Option("--by", help="Attribute that forms the groups.")],
    on: Annotated[
        list[str], typer.Option("--on", help="Outcome column(s); repeat or comma-separate.")
    ],
    derive: Annotated[
        list[str] | None,
        typer.Option(help="NAME=EXPRESSION, e.g. 'Total=MntWines+MntFruits'; repeatable."),
    ] = None,
    order: Annotated[
        str | None, typer.Option(help="Order of --by's values (makes it ordinal): 'low,mid,high'.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Quantile groups for a many-valued numeric --by.")] = 5,
    config: ConfigOption = None,
    column: Annotated[
        list[str] | None, typer.Option("--map", help="customer_id=COLUMN if not detected.")
    ] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter (default: sniffed).")] = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write effect.csv, posthoc.csv, groups.csv.")
    ] = None,
) -> None:
    """Does an attribute change an outcome? Kruskal–Wallis, post-hoc pairs (Holm), effect
    sizes, and Spearman's rho when the attribute is ordinal."""

    def go() -> None:
        from .analyses import analyze_effect as analyze
        from .derive import parse_assignments

        if bins < 2:
            raise SegmintError(f"--bins must be at least 2, got {bins}")
        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "derive": {**base.derive, **parse_assignments(derive or [])} or None,
                "columns": _parse_map(column) or None,
                "delimiter": delimiter,
                "date_format": date_format,
                "decimal": decimal,
            }
        )
        outcomes = [o for item in on for o in (_split(item) or [])]
        from contextlib import nullcontext

        from .store import output_folder, save_effect

        with output_folder(out_dir, "effect") if out_dir else nullcontext():
            result, ing = analyze(str(data), by, outcomes, settings, order=_split(order), bins=bins)
            _print_effect(result, ing)
            if out_dir:
                save_effect(result, out_dir)
                out.print(f"tables → {out_dir}/effect.csv, posthoc.csv, groups.csv")

    _guard(go)


def _print_effect(result: Any, ing: Any) -> None:
    from rich.table import Table

    rows = ing.rows
    q = sum(rows["quarantined"].values())
    kind = "ordinal" if result.ordinal else "nominal"
    if result.binned:
        kind += ", cut into quantile groups"
    out.print(
        f"[bold]{result.by}[/] ({kind}) · {rows['kept']:,} customers"
        + (f" ({q:,} rows quarantined)" if q else "")
    )
    t = Table(show_lines=False, box=None, pad_edge=False)
    for c in ("outcome", "test", "stat", "p Holm", "effect", "Spearman ρ", "pairs differ"):
        t.add_column(c, justify="left" if c in {"outcome", "test", "effect"} else "right")
    post = result.posthoc
    short = {"Kruskal–Wallis": "KW H", "chi-square": "χ²"}
    effect = {"epsilon²": "ε²", "Cramér's V": "V"}
    for r in result.tests.itertuples():
        pairs = post[post.outcome == r.outcome]
        rho = f"{r.spearman_rho:+.3f}" if r.spearman_rho == r.spearman_rho else "–"
        t.add_row(
            r.outcome,
            f"{short.get(r.test, r.test)} df={r.dof}",
            f"{r.statistic:,.1f}",
            f"{r.p_holm:.2g}",
            f"{effect.get(r.effect, r.effect)}={r.effect_size:.3f} {r.effect_label}",
            rho + (f" p={r.spearman_p_holm:.2g}" if rho != "–" else ""),
            f"{int(pairs.significant.sum())}/{len(pairs)}" if len(pairs) else "–",
        )
    out.print(t)
    for r in result.tests.itertuples():
        g = result.groups[result.groups.outcome == r.outcome]
        if "median" in g and g["median"].notna().any():
            parts = "; ".join(f"{x.group} {x.median:,.4g} ({x.mean:,.3g})" for x in g.itertuples())
            out.print(f"  {r.outcome}, median (mean) by {result.by}: {parts}")
        sig = post[(post.outcome == r.outcome) & post.significant]
        for p in sig.itertuples():
            out.print(
                f"    {p.a} vs {p.b}: p (Holm) {p.p_holm:.2g}, "
                f"rank-biserial {p.rank_biserial:+.2f} ({p.effect_label})"
            )


def _guard(fn: Any) -> None:
    try:
        fn()
    except SegmintError as exc:
        if _state["verbose"]:
            err.print_exception()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except _Terminated:
        err.print("[red]terminated[/]")
        raise typer.Exit(143) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if _signalled:  # a query engine turns the signal into its own "interrupted" error
            interrupted = _signalled[-1] == signal.SIGINT
            err.print("[red]interrupted[/]" if interrupted else "[red]terminated[/]")
            raise typer.Exit(130 if interrupted else 143) from None
        if _state["verbose"]:
            err.print_exception()
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}. "
            "This is a bug in segmint; run again with -v for the traceback and report it.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


class _Terminated(BaseException):
    """SIGTERM as an exception: ``finally`` blocks run, so the partial output folder, the lock
    and the query engine's temporary store are removed as on Ctrl-C."""


_signalled: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    """SIGINT → KeyboardInterrupt, SIGTERM → ``_Terminated``; remembered, because DuckDB
    turns an exception raised during a query into its own 'Query interrupted' error."""
    _signalled.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Terminated


def _provenance(meta: dict[str, Any]) -> str:
    """Which data the model came from: path, short hash, size, and when it was trained."""
    inputs = meta.get("inputs")
    if not inputs:
        return "model: trained on data not recorded (a run from an older segmint)"
    parts = [
        f"{escape(str(i.get('path')))} (sha256 {str(i.get('sha256'))[:12]}, "
        f"{(i.get('bytes') or 0) / 1e6:,.1f} MB)"
        for i in inputs
    ]
    when = f" {meta['created']}" if meta.get("created") else ""
    return f"model: trained{when} on {' + '.join(parts)}"


def main() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        app()
    except _Terminated:  # outside a command (argument parsing): exit as SIGTERM asked
        sys.exit(143)
