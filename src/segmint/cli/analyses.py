"""``segmint clv``, ``track`` and ``analyze effect``: analyses beside segmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from segmint.cli.app import (
    ConfigOption,
    DateFormatOption,
    DecimalOption,
    MapOption,
    NameOption,
    ProgressBar,
    SeedOption,
    TagOption,
    WorkspaceOption,
    app,
    guard,
    open_workspace,
    out,
    parse_map,
    split_list,
)
from segmint.config import Settings
from segmint.exceptions import ConfigError


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
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the results.")
    ] = None,
    holdout_end: Annotated[
        str | None,
        typer.Option(help="ISO date: the last day of the holdout (default: the last order's day)."),
    ] = None,
    time_unit: Annotated[str | None, typer.Option(help="days | weeks (default: weeks).")] = None,
    config: ConfigOption = None,
    column: MapOption = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
    workspace: WorkspaceOption = None,
    name: NameOption = None,
    tag: TagOption = None,
) -> None:
    """Fit BG/NBD + Gamma-Gamma on a calibration period and check them on the holdout."""

    def go() -> None:

        from segmint.pipeline.clv import validate_clv

        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "clv": {"time_unit": time_unit},
                "columns": parse_map(column) or None,
                "date_format": date_format,
                "decimal": decimal,
            }
        )
        cal = iso_date(calibration_end, "--calibration-end")
        hold = iso_date(holdout_end, "--holdout-end") if holdout_end else None
        from segmint.pipeline.jobs import job
        from segmint.store.artifacts import save_clv

        settings = settings.merged({"inputs": [str(data)]})
        ws = open_workspace(workspace)
        with job(ws, "clv", settings, out=out_dir, name=name, tags=tag or ()) as work:
            res = validate_clv(str(data), cal, settings, holdout_end=hold)
            folder = save_clv(res, work.folder)
            work.succeeded(
                customers=len(res.customers),
                inputs=res.inputs,
                metrics=res.diagnostics["holdout"],
            )
        _print_clv(res)
        out.print(
            f"→ {folder}/clv_params.json, clv_holdout.csv, clv_holdout.html, clv_customers.parquet"
        )
        out.print(f"run {work.id} (segmint runs show {work.id})")

    guard(go)


@app.command("track")
def track_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Order lines (and optionally attributes).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the results.")
    ] = None,
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
    workspace: WorkspaceOption = None,
    name: NameOption = None,
    tag: TagOption = None,
) -> None:
    """Segments over time: snapshots, migration (Sankey), size/revenue trends, drift alerts."""

    def go() -> None:
        from segmint.pipeline.segmentation import STAGES
        from segmint.pipeline.tracking import track_segments
        from segmint.store.artifacts import save_tracking

        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "inputs": [str(p) for p in inputs],
                "seed": seed,
                "columns": parse_map(column) or None,
                "date_format": date_format,
                "decimal": decimal,
                "clustering": {"k": k},
            }
        )
        if every not in {"month", "quarter"}:
            raise ConfigError([f"--every must be 'month' or 'quarter', got {every!r}"])
        from segmint.pipeline.jobs import job

        ws = open_workspace(workspace)
        with job(ws, "track", settings, out=out_dir, name=name, tags=tag or ()) as work:
            with ProgressBar((*STAGES, "snapshots")) as bar:
                tracking, result = track_segments(settings, every, refit=refit, progress=bar)
                bar("snapshots", "done")
            folder = save_tracking(tracking, work.folder, every, settings, run=result)
            work.succeeded_with(result.manifest)
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
        out.print(f"report: {folder / 'track_report.html'} (the fitted run: {folder / 'run'})")
        out.print(f"run {work.id} (segmint runs show {work.id})")

    guard(go)


def iso_date(text: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError([f"{option} must be an ISO date like 2011-06-01, got {text!r}"]) from None


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
        from segmint.data.derive import parse_assignments
        from segmint.pipeline.effect import analyze_effect as analyze

        if bins < 2:
            raise ConfigError([f"--bins must be at least 2, got {bins}"])
        base = Settings.from_file(config) if config else Settings()
        settings = base.merged(
            {
                "derive": {**base.derive, **parse_assignments(derive or [])} or None,
                "columns": parse_map(column) or None,
                "delimiter": delimiter,
                "date_format": date_format,
                "decimal": decimal,
            }
        )
        outcomes = [o for item in on for o in (split_list(item) or [])]
        from contextlib import nullcontext

        from segmint.store.artifacts import output_folder, save_effect

        with output_folder(out_dir, "effect") if out_dir else nullcontext():
            result, rows = analyze(
                str(data), by, outcomes, settings, order=split_list(order), bins=bins
            )
            _print_effect(result, rows)
            if out_dir:
                save_effect(result, out_dir)
                out.print(f"tables → {out_dir}/effect.csv, posthoc.csv, groups.csv")

    guard(go)


def _print_effect(result: Any, rows: dict[str, Any]) -> None:
    from rich.table import Table

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
