"""The ``enso`` command line: parses arguments, then calls the library.

Quick commands (``db``, ``status``, ``ingest``, ``backfill``) call the library
directly, so they start in a second; the same functions run as Prefect flows in
``flows/`` for scheduled and remote runs.

Exit codes: 0 success; 1 a month or file was rejected or failed, or an input is
stale (beyond its provider's usual publication day: someone must look); 2 bad
usage or configuration (a month that has not ended yet, invalid ENSO_* settings,
a product version the store does not hold), or the store unreachable; 75
(EX_TEMPFAIL) nothing new is published yet, within the usual lag — try again later.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from db.engine import open_store
from enso.config import Settings
from enso.months import Month, last_complete_month, month_arg
from flows.settings import run_settings

EX_TEMPFAIL = 75


def ended_month(month: Month, option: str) -> Month:
    """``month`` if it is over (data for a month can exist only after it ends); else a usage error."""
    newest = last_complete_month()
    if month > newest:
        raise ValueError(f"{option} {month} has not ended yet (the last complete month is {newest}): "
                         "a month's data is published after the month ends; ask for "
                         f"{newest} or earlier")
    return month


def workers_count(text: str) -> int:
    """An argparse type: a whole number of workers, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 worker is needed")
    return value


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import redacted
    from db.migrate import current_revision, head_revision, upgrade

    url = settings.resolved_database_url()
    if args.action != "grant-analyst" and (args.role or args.user or args.password_env):
        print("error: --role, --user and --password-env go with `enso db grant-analyst`", file=sys.stderr)
        return 2
    if args.action != "drop-grids" and (args.source or args.yes):
        print("error: --source and --yes go with `enso db drop-grids`", file=sys.stderr)
        return 2
    if args.action == "grant-analyst":
        return grant_analyst_role(args, url)
    if args.action == "drop-grids":
        return drop_grids(args, settings)
    if args.action == "upgrade":
        rev = upgrade(url)
        print(f"store {redacted(url)} is at schema revision {rev} (head)")
    else:
        rev = current_revision(open_store(settings, check=False))
        print(f"store {redacted(url)}: revision {rev or 'none'}; head is {head_revision()}")
    return 0


def grant_analyst_role(args: argparse.Namespace, url: str) -> int:
    import os

    from db.engine import opened_engine, redacted
    from db.roles import ANALYST_ROLE, grant_analyst

    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            print(f"error: --password-env {args.password_env}: that environment variable is empty or unset",
                  file=sys.stderr)
            return 2
    role = args.role or ANALYST_ROLE
    with opened_engine(url) as engine:
        grant_analyst(engine, role, user=args.user, password=password)
    print(f"store {redacted(url)}: role {role} may read every table and view, and write nothing"
          + (f"; login {args.user} is a member" if args.user else ""))
    return 0


def drop_grids(args: argparse.Namespace, settings: Settings) -> int:
    """Delete every grid of one source, the first step of re-backfilling it under a new product version."""
    from db import store

    if not args.source:
        print("error: `enso db drop-grids` needs --source cobe|ersst", file=sys.stderr)
        return 2
    engine = open_store(settings)
    with engine.connect() as conn:
        held = store.product_versions(conn, args.source)
    if not held:
        print(f"the store holds no {args.source} grid; nothing to drop")
        return 0
    what = "; ".join(f"{n} months of {v!r} ({a}..{b})" for v, (a, b, n) in held.items())
    if not args.yes:
        print(f"would delete {what}; rerun with --yes to delete them", file=sys.stderr)
        return 2
    with engine.begin() as conn:
        store.delete_grids(conn, args.source)
    print(f"deleted {what}. Next: `enso backfill --source {args.source} --start ... --end ...` under the new "
          "version, then `enso train` (models trained on the old version must not forecast from the new one)")
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from db.ingest import ingest_index, ingest_newest, ingest_relative, ingest_sst_month
    from db.status import alarm_time, input_freshness
    from enso.publication import is_overdue
    from enso.sources.sst import sst_source

    month = ended_month(args.month, "--month") if args.month else None
    engine = open_store(settings)
    source = args.source or settings.sst_source
    if month is not None:
        results = [ingest_sst_month(engine, settings, source, month)]
    else:
        results = ingest_newest(engine, settings, source)
    if not args.no_index:
        results.append(ingest_index(engine, settings, accept_shrink=args.accept_shrink))
        results += ingest_relative(engine, settings, accept_shrink=args.accept_shrink)
    for r in results:
        print(r)
    if any(r.outcome in ("rejected", "failed") for r in results):
        return 1
    now = alarm_time(settings)  # the clock, unless ENSO_STALE_INPUT_AS_OF says otherwise
    if args.month and results[0].outcome == "not_published":
        month, lag = results[0].month, sst_source(source).publication(settings)
        if is_overdue(month, now, lag):
            print(f"STALE: {month} of {source} is not published at {results[0].url} although {lag.provider} "
                  f"usually publishes a month by day {lag.day} of the next: {sst_source(source).advice}",
                  file=sys.stderr)
            return 1
        return EX_TEMPFAIL
    stale = [f for f in input_freshness(engine, settings, now, sources=(source,), index=not args.no_index)
             if f.stale]
    if stale:
        print("\n".join(f.line() for f in stale), file=sys.stderr)
        return 1
    if not args.month and results[0].outcome == "not_published":
        print(f"{results[0].month} of {source} is not published yet (older months are in the store); "
              "try again later", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from db.ingest import backfill, ingest_index, ingest_relative

    start, end = args.start, ended_month(args.end, "--end")
    engine = open_store(settings)
    summary = backfill(engine, settings, args.source or settings.sst_source, start, end, workers=args.workers,
                       progress=not args.quiet)
    print(summary.report())
    index_ok = True
    if not args.no_index:
        indexes = [ingest_index(engine, settings, accept_shrink=args.accept_shrink),
                   *ingest_relative(engine, settings, accept_shrink=args.accept_shrink)]
        print("\n".join(str(r) for r in indexes))
        index_ok = all(r.ok for r in indexes)
    return 0 if summary.complete and index_ok else 1


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from db.engine import redacted
    from db.status import store_status

    engine = open_store(settings)
    print(f"store: {redacted(settings.resolved_database_url())}")
    print(store_status(engine, recent=args.recent, settings=settings).render())
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from db.forecasting import train_and_register

    engine = open_store(settings)
    if bool(args.train_end) != bool(args.valid_end):
        raise ValueError("give both --train-end and --valid-end (YYYY-MM), or neither for the rolling windows "
                         "of operation (ENSO_VALID_YEARS)")
    result = train_and_register(engine, settings, args.preset,
                                train_end=args.train_end, valid_end=args.valid_end,
                                device=args.device, seed=args.seed, max_epochs=args.max_epochs,
                                progress=not args.quiet)
    window = result.metrics["periods"]
    print(f"registered model {result.version}")
    print(f"training: init months {window['train_first_init']}..{window['train_last_init']} "
          f"({window['n_train']} samples); selection: {window['valid_first_init']}..{window['valid_last_init']} "
          f"({window['n_valid']} samples, targets up to {window['valid_end']})"
          + (f"; refitted on all {window['n_refit']} samples" if window.get("refit") else ""))
    print(format_scores("selection", result.metrics["validation"],
                        result.metrics["validation_persistence"]))
    print(format_margins(result.metrics["selection"]))
    if "test" in result.metrics:
        print(format_scores(f"test {result.metrics['test']['period']}", result.metrics["test"], None))
    print(result.reason)
    return 0


def format_scores(title: str, scores: dict, persistence: dict | None) -> str:
    """A per-lead table of ACC/RMSE (and persistence's, when given)."""
    def cell(v: object) -> str:
        return "  -  " if v is None else f"{v:5.2f}"

    lines = [f"{title}:", "  lead " + " ".join(f"{k:>5}" for k in scores["lead"])]
    lines.append("  ACC  " + " ".join(cell(v) for v in scores["acc"]))
    lines.append("  RMSE " + " ".join(cell(v) for v in scores["rmse"]))
    if persistence is not None:
        lines.append("  persistence ACC  " + " ".join(cell(v) for v in persistence["acc"]))
        lines.append("  persistence RMSE " + " ".join(cell(v) for v in persistence["rmse"]))
    return "\n".join(lines)


def format_margins(selection: dict) -> str:
    """One line: each rival's mean RMSE over leads 1-12 on the selection cases, minus the candidate's."""
    margins = selection.get("margins", {})
    cells = [f"{name} {'-' if m is None else f'{m:+.3f}'}" for name, m in margins.items()]
    return "margins (rival's mean RMSE - this model's; > 0: this model is better): " + (", ".join(cells) or "-")


def cmd_forecast(args: argparse.Namespace, settings: Settings) -> int:
    from db.forecasting import forecast

    engine = open_store(settings)
    result = forecast(engine, init_month=args.init, version=args.model,
                      phase_index=settings.phase_index)
    print(f"model {result.choice.info.version} ({result.choice.reason}); init month {result.init_month}; "
          f"{result.rows} rows written to table forecast (kind operational)")
    print(" lead  target   anomaly  phase     P(La Niña) P(neutral) P(El Niño)")
    for r in result.frame.itertuples(index=False):
        print(f" {r.lead:>4}  {r.target_month}  {r.nino34_anomaly:+7.2f}  {r.phase:<9} {r.p_la_nina:10.2f} "
              f"{r.p_neutral:10.2f} {r.p_el_nino:10.2f}")
    if result.outlook is not None and not result.outlook.empty:
        print(f"seasonal outlook (CPC style, {len(result.outlook)} rows in table seasonal_outlook):")
        print(" season  months             index     mean    sd  P(La Niña) P(neutral) P(El Niño)")
        for r in result.outlook.itertuples(index=False):
            print(f" {r.season:>6}  {r.season_label} {r.first_month}..{r.last_month}  {r.phase_index.upper():<6}"
                  f"{r.mean:+7.2f} {r.sd:5.2f} {r.p_la_nina:11.2f} {r.p_neutral:10.2f} {r.p_el_nino:10.2f}")
    return 0


def cmd_hindcast(args: argparse.Namespace, settings: Settings) -> int:
    from db.forecasting import hindcast

    engine = open_store(settings)
    result = hindcast(engine, args.start, args.end, version=args.model,
                      progress=not args.quiet, phase_index=settings.phase_index)
    print(f"model {result.choice.info.version} ({result.choice.reason}): {result.rows} hindcast rows for init "
          f"months {args.start}..{args.end}")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from db.verification import verify

    if bool(args.start) != bool(args.end):
        raise ValueError("give both --start and --end (YYYY-MM), or neither to verify every init month")
    engine = open_store(settings)
    result = verify(engine, model_version=args.model, kind=args.kind,
                    start=args.start, end=args.end, phase_index=settings.phase_index)
    print(result.table())
    print(f"{result.n_scores} scores written to table verification_score")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from db.reporting import email_report, render_and_store

    engine = open_store(settings)
    stored = render_and_store(engine, settings, args.init,
                              out=Path(args.out) if args.out else None)
    print(f"report {stored.init_month} (model {stored.model_version}): {stored.path}")
    if args.email or args.force_email:
        print(email_report(engine, settings, stored.init_month, force=args.force_email))
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from db import registry

    engine = open_store(settings)
    if args.action == "promote":
        if not args.version:
            raise ValueError("enso models promote needs a VERSION (see `enso models list`)")
        info = registry.promote(engine, args.version)
        print(f"{info.version} is now the champion")
        return 0
    models = registry.list_models(engine)
    if not models:
        print("no models yet: run `enso train`")
    for m in models:
        rmse = m.validation_rmse
        margins = m.metrics.get("selection", {}).get("margins", {})
        cells = " ".join(f"{name}={'-' if margins.get(name) is None else format(margins[name], '+.3f')}"
                         for name in ("champion", "persistence", "damped_persistence", "linear_eof"))
        print(f"{m.status:<10} {m.version:<48} {m.preset:<16} train ..{m.train_end} valid ..{m.valid_end} "
              f"valid RMSE {'-' if rmse is None else f'{rmse:.3f}'}  margins {cells}  "
              f"{m.created_at:%Y-%m-%d %H:%M}")
    return 0


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    from deployments.deploy import deploy_all

    api_url = get_current_settings().api.url
    if not api_url:
        print("error: PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
              "PREFECT_API_URL=http://<host>:4200/api", file=sys.stderr)
        return 2
    with get_client(sync_client=True) as client:
        unhealthy = client.api_healthcheck()
    if unhealthy:
        print(f"error: the Prefect API at {api_url} is unreachable: {unhealthy}", file=sys.stderr)
        return 2
    ids = deploy_all(monthly_cron=args.monthly_cron or settings.monthly_cron,
                     timezone=args.timezone or settings.schedule_timezone,
                     retrain_cron=args.retrain_cron or settings.retrain_cron, paused=args.paused)
    print(f"registered at {api_url}:")
    with get_client(sync_client=True) as client:
        for deployment_id in ids:
            d = client.read_deployment(deployment_id)
            when = ", ".join(f"cron '{s.schedule.cron}' {s.schedule.timezone}" for s in d.schedules) or "on demand"
            print(f"  {client.read_flow(d.flow_id).name}/{d.name}  pool {d.work_pool_name}  {when}"
                  + ("  (paused)" if d.paused else ""))
    print("start the workers where the code and ENSO_* settings are:\n"
          "  prefect worker start --pool cpu --type process --install-policy never\n"
          "  prefect worker start --pool gpu --type process --install-policy never   # on the GPU host\n"
          "then e.g.: prefect deployment run 'backfill/backfill' -p start=1891-01 -p end=2020-12")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enso", description="ENSO forecasting system (settings: ENSO_* env vars)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="create or migrate the store's schema; grant read-only SQL access; drop a "
                                  "source's grids before re-backfilling it under a new product version")
    p.add_argument("action", choices=["upgrade", "current", "grant-analyst", "drop-grids"])
    p.add_argument("--role", help="grant-analyst: the read-only group role (default enso_analyst)")
    p.add_argument("--user", help="grant-analyst: also create (or update) this login, a member of the role")
    p.add_argument("--password-env", metavar="VAR", help="grant-analyst: the login's password is in $VAR")
    p.add_argument("--source", choices=["cobe", "ersst"], help="drop-grids: the SST source whose grids to delete")
    p.add_argument("--yes", action="store_true", help="drop-grids: really delete (without it: say what would go)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="ingest the newest SST month (or --month) and the whole index files")
    p.add_argument("--month", type=month_arg, help="YYYY-MM; default: the newest published month")
    p.add_argument("--source", choices=["cobe", "ersst"], help="SST source (default ENSO_SST_SOURCE, cobe)")
    p.add_argument("--no-index", action="store_true",
                   help="skip the index files (the Niño 3.4 index and the relative index)")
    p.add_argument("--accept-shrink", action="store_true",
                   help="store an index file even if it lacks months the stored index has (logged)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("backfill", help="ingest every month of a range (resumable, idempotent)")
    p.add_argument("--start", required=True, type=month_arg, help="YYYY-MM")
    p.add_argument("--end", required=True, type=month_arg, help="YYYY-MM")
    p.add_argument("--source", choices=["cobe", "ersst"])
    p.add_argument("--workers", type=workers_count, default=4, help="concurrent downloads (default 4)")
    p.add_argument("--no-index", action="store_true",
                   help="skip the index files (the Niño 3.4 index and the relative index)")
    p.add_argument("--accept-shrink", action="store_true",
                   help="store an index file even if it lacks months the stored index has (logged)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("train", help="train, evaluate and register a model (promoted if it beats the champion)")
    p.add_argument("--preset", default=None,
                   help="keydana2021, residual-anomaly, cpu-small, tiny (default: ENSO_MODEL_PRESET)")
    p.add_argument("--train-end", default=None, type=month_arg,
                   help="research: last month of the training period (default: ENSO_TRAIN_END, else rolling: "
                        "the newest month minus ENSO_VALID_YEARS)")
    p.add_argument("--valid-end", default=None, type=month_arg,
                   help="research: last month of the selection period (default: ENSO_VALID_END, else the newest "
                        "month with grids and index)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, help="override the preset's epoch limit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("forecast", help="forecast leads 1-12 into the forecast table")
    p.add_argument("--init", type=month_arg, help="init month YYYY-MM (default: the newest month of data)")
    p.add_argument("--model", help="model version (default: the champion)")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("hindcast", help="out-of-sample forecasts for every init month of a range")
    p.add_argument("--start", required=True, type=month_arg, help="first init month YYYY-MM")
    p.add_argument("--end", required=True, type=month_arg, help="last init month YYYY-MM")
    p.add_argument("--model", help="model version (default: the champion)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_hindcast)

    p = sub.add_parser("verify", help="score stored forecasts beside the baselines into table verification_score")
    p.add_argument("--model", help="model version (default: the champion, else the newest)")
    p.add_argument("--kind", choices=["hindcast", "selection", "operational"], default=None,
                   help="forecasts to score (default: the model's hindcasts if any, else its selection forecasts)")
    p.add_argument("--start", type=month_arg, help="first init month YYYY-MM (with --end; default: all)")
    p.add_argument("--end", type=month_arg, help="last init month YYYY-MM")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="render the monthly report into a file and table report (and email it)")
    p.add_argument("--init", type=month_arg, help="init month YYYY-MM (default: the newest operational forecast's)")
    p.add_argument("--out", help="HTML file or folder (default ENSO_REPORT_DIR/enso-report-YYYY-MM.html)")
    p.add_argument("--email", action="store_true", help="email it to ENSO_REPORT_TO unless already sent")
    p.add_argument("--force-email", action="store_true", help="email it even if it was sent before")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("models", help="list the registry, or promote a model by hand")
    p.add_argument("action", choices=["list", "promote"])
    p.add_argument("version", nargs="?")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("status", help="what the store holds, gaps, newest months, last ingest outcomes")
    p.add_argument("--recent", type=int, default=10, help="how many recent ingest attempts to show")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("deploy", help="create the Prefect work pools and register the deployments (PREFECT_API_URL)")
    p.add_argument("--monthly-cron", help="cron of the monthly run (default ENSO_MONTHLY_CRON, '0 6 12 * *')")
    p.add_argument("--timezone", help="IANA timezone of the crons (default ENSO_SCHEDULE_TIMEZONE, UTC)")
    p.add_argument("--retrain-cron", help="cron of retraining (default ENSO_RETRAIN_CRON, '0 8 1 1,4,7,10 *')")
    p.add_argument("--paused", action="store_true", help="register the deployments paused (no scheduled runs)")
    p.set_defaults(func=cmd_deploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import DBAPIError

    from db.engine import StoreUnavailable
    from enso.sources import SourceError

    args = build_parser().parse_args(argv)
    try:
        settings = run_settings()
        func: Callable[[argparse.Namespace, Settings], int] = args.func
        return func(args, settings)
    except (StoreUnavailable, SourceError, LookupError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        print(f"error: the store failed: {exc.orig}. Nothing of this command's unfinished step was kept; "
              "check ENSO_DATABASE_URL and the database server, then rerun.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (completed months are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
