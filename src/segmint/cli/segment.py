"""``segmint run``, ``compare``, ``predict``, ``trust`` and ``generate``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from segmint.cli.app import (
    ConfigOption,
    DateFormatOption,
    DecimalOption,
    FeaturesOption,
    KindOption,
    MapOption,
    NameOption,
    ObservationEndOption,
    ProgressBar,
    SeedOption,
    TagOption,
    WorkspaceOption,
    app,
    guard,
    open_workspace,
    out,
    parse_map,
    provenance,
    split_list,
)
from segmint.config import Settings
from segmint.exceptions import ArtifactError, ConfigError


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
    workspace: WorkspaceOption = None,
    name: NameOption = None,
    tag: TagOption = None,
) -> None:
    """Segment customers, write the run folder (tables, model, report) and register it in
    the workspace (``segmint runs list``)."""

    def go() -> None:
        from segmint.pipeline.segmentation import STAGES
        from segmint.pipeline.segmentation import run as run_pipeline

        base = Settings.from_file(config) if config else Settings()
        overrides: dict[str, Any] = {
            "inputs": [str(p) for p in inputs] if inputs else None,
            "out": str(out_dir) if out_dir else None,
            "features": split_list(features),
            "kind": kind,
            "observation_end": observation_end,
            "seed": seed,
            "delimiter": delimiter,
            "date_format": date_format,
            "decimal": decimal,
            "memory_limit": memory_limit,
            "report_charts": charts or None,
            "columns": parse_map(column) or None,
            "clustering": {"k": k, "k_min": k_min, "k_max": k_max, "algorithm": algorithm},
        }
        settings = base.merged(overrides)
        if not settings.inputs:
            raise ConfigError(
                ["no input file: give one on the command line or in the config's 'inputs'"]
            )
        t0 = time.perf_counter()
        from segmint.pipeline.jobs import job
        from segmint.store.artifacts import save_run

        what = "compare" if settings.clustering.algorithm == "all" else "run"
        ws = open_workspace(workspace)
        # the output folder is checked, locked and probed before the run is registered
        with (
            job(ws, what, settings, out=settings.out, name=name, tags=tag or ()) as work,
            ProgressBar((*STAGES, "write")) as bar,
        ):
            result = run_pipeline(settings, progress=bar)
            bar("write", "start")
            folder = save_run(result, work.folder)
            bar("write", "done")
            work.succeeded_with(result.manifest)
        _summary(result, folder, time.perf_counter() - t0, work.id)

    guard(go)


def _summary(result: Any, folder: Path, seconds: float, run_id: str) -> None:
    m = result.manifest
    q = m.rows.quarantined
    sil = m.metrics.silhouette
    quality = f"silhouette {sil:.3f}" if sil is not None else "silhouette undefined"
    out.print(
        f"[bold green]{m.customers:,} customers → {m.k} segments[/] in {seconds:.1f} s ({quality})"
    )
    out.print(
        f"rows: {m.rows.read:,} read = {m.rows.kept:,} kept + "
        f"{sum(q.values()):,} quarantined"
        + (f" ({', '.join(f'{r}: {n:,}' for r, n in q.items())})" if q else "")
    )
    if m.selection.compared:
        out.print(f"method: {m.selection.compared} (comparison.csv)")
    out.print(f"why k = {m.k}: {m.selection.reason}")
    for s in result.segments.itertuples():
        rev = f", {s.share_revenue:.0%} of revenue" if hasattr(s, "share_revenue") else ""
        out.print(f"  {s.segment}: {s.segment_name} — {s.share_customers:.0%} of customers{rev}")
    out.print(f"report: {folder / 'report.html'}")
    out.print(f"run {run_id} (segmint runs show {run_id})")


@app.command()
def compare(
    inputs: Annotated[list[Path], typer.Argument(help="Order lines and/or a customer table.")],
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    config: ConfigOption = None,
    features: FeaturesOption = None,
    kind: KindOption = None,
    column: MapOption = None,
    seed: SeedOption = None,
    date_format: DateFormatOption = None,
    decimal: DecimalOption = None,
    workspace: WorkspaceOption = None,
    name: NameOption = None,
    tag: TagOption = None,
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
        workspace=workspace,
        name=name,
        tag=tag,
    )


@app.command()
def predict(
    data: Annotated[list[Path], typer.Argument(help="New order lines and/or customer table.")],
    run_ref: Annotated[
        str,
        typer.Option(
            "--run",
            help="The run: a run folder, or a run id, id prefix, tag, name or 'latest' in the "
            "workspace.",
        ),
    ],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Scores: .csv or .parquet.")],
    observation_end: ObservationEndOption = None,
    algorithm: Annotated[
        str | None,
        typer.Option(help="Check that the run used this method (the run's model decides)."),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Assign new customers to the segments of a saved run (any clustering method)."""

    def go() -> None:
        from segmint.pipeline.scoring import predict_detailed, select_scores
        from segmint.store.loading import load_run_model

        suffix = out_file.suffix.lower()
        if suffix not in {".csv", ".parquet"}:
            raise ConfigError([f"--out must end in .csv or .parquet, got {out_file.name!r}"])
        from segmint.pipeline.jobs import find_run_folder

        run_dir = find_run_folder(run_ref, workspace)
        model = load_run_model(run_dir)
        out.print(provenance(model.meta))
        used = model.meta.get("algorithm", "kmeans")
        if algorithm and algorithm != used:
            raise ConfigError(
                [
                    f"the run in {run_dir} was segmented with {used!r}, not {algorithm!r}: a "
                    f"model predicts with the method it was fitted with. Make a run with "
                    f"'segmint run ... --algorithm {algorithm}' and predict with that"
                ]
            )
        pred = predict_detailed(model, [str(p) for p in data], observation_end=observation_end)
        scores = select_scores(pred.scores)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            from segmint.store.csvsafe import write_csv

            write_csv(scores, out_file)  # ids starting with = + - @ cannot run as formulas
        else:
            scores.to_parquet(out_file, index=False)
        rows = pred.rows
        q = rows["quarantined"]
        out.print(
            f"[bold green]{len(scores):,} customers scored[/] → {out_file} "
            f"(rows: {rows['read']:,} read, {rows['kept']:,} kept, {sum(q.values()):,} quarantined)"
        )
        if q:
            from segmint.store.artifacts import write_quarantine

            qpath = out_file.with_name(out_file.stem + ".quarantine.parquet")
            write_quarantine(pred.quarantine, qpath)
            out.print(f"rejected rows with their reasons → {qpath}")
        if pred.info.get("customers_only_returns"):
            n = pred.info["customers_only_returns"]
            out.print(f"{n:,} customer(s) with returns but no purchase were not scored")

    guard(go)


@app.command()
def trust(
    run_dir: Annotated[Path, typer.Argument(help="A run folder copied from another machine.")],
) -> None:
    """Check a run's model against segmint's allow-list (without loading it) and sign it
    with this machine's key. Only for runs whose origin you have checked."""

    def go() -> None:
        from segmint.model import trust_model_file

        if not run_dir.is_dir():
            raise ArtifactError(
                f"{run_dir}: not a folder; give the run folder to trust.", code="artifact.missing"
            )
        info = trust_model_file(run_dir / "model.skops")
        out.print(f"types in {info['path']} (all on segmint's allow-list):")
        for name in info["types"]:
            out.print(f"  {name}", highlight=False)
        out.print(f"before: {info['before']}")
        out.print(
            f"[bold green]signed[/] with this machine's key {info['key_id']} "
            f"(from {escape(info['key_source'])}) → {info['path']}.sig"
        )

    guard(go)


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
        from segmint.data.synth import generate_orders

        t0 = time.perf_counter()
        info = generate_orders(customers, out_file, seed=seed)
        out.print(
            f"[bold green]{info['lines']:,} order lines[/] for {customers:,} customers → "
            f"{out_file} in {time.perf_counter() - t0:.1f} s; planted types → {info['types_path']}"
        )

    guard(go)
