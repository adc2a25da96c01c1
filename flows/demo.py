"""`make demo`: the whole monthly pipeline, offline, on embedded defaults.

1. writes a local data mirror from the synthetic climate (COBE-format GRIB files
   1891-01 .. the last complete month, and a CPC-format Niño 3.4 index file) and
   serves it on 127.0.0.1;
2. starts a loopback SMTP server that keeps what it receives under var/demo/mail/;
3. runs the real flows through Prefect in ephemeral mode on a SQLite store:
   backfill, then the monthly flow (which trains the CPU preset on the rolling
   windows because there is no champion yet, forecasts, verifies the model's
   selection forecasts, renders the report and emails it);
4. prints where the report is and what to run next.

Everything lives under ``var/demo/`` (delete it to start again; rerunning reuses it).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

DEMO = Path("var/demo").resolve()


class MailSink:
    """aiosmtpd handler that writes every received message to a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        name = self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{len(list(self.folder.iterdir())):03d}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _configure(mirror_urls: dict[str, str], smtp_port: int) -> None:
    os.environ.update({
        "ENSO_DATABASE_URL": f"sqlite:///{DEMO / 'enso.sqlite'}",
        "ENSO_DATA_DIR": str(DEMO),
        "ENSO_REPORT_DIR": str(DEMO / "reports"),
        "ENSO_SMTP_HOST": "127.0.0.1",
        "ENSO_SMTP_PORT": str(smtp_port),
        "ENSO_SMTP_SECURITY": "none",
        "ENSO_REPORT_FROM": "enso-demo@localhost",
        "ENSO_REPORT_TO": "subscriber@localhost",
        "ENSO_HTTP_RETRIES": "2",
        "ENSO_MODEL_PRESET": "cpu-small",
        "ENSO_MODEL_MEMBERS": "1",
        "ENSO_MONTHLY_RETRIES": "0",  # the mirror has every month: waiting would only hide a failure  # one ensemble member keeps the demo under ten minutes on two cores
        "PREFECT_HOME": str(DEMO / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        **mirror_urls,
    })
    os.environ.pop("PREFECT_API_URL", None)


def main() -> int:
    from aiosmtpd.controller import Controller

    from db.migrate import upgrade
    from enso.mirror import MirrorServer, write_mirror
    from enso.months import Month, last_complete_month

    t0 = time.perf_counter()
    newest = last_complete_month()
    print(f"[demo] 1/4 writing the synthetic data mirror 1891-01..{newest} under {DEMO / 'mirror'}", flush=True)
    write_mirror(DEMO / "mirror", Month.of(1891, 1), newest, seed=0, progress=True)
    sink = MailSink(DEMO / "mail")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with MirrorServer(DEMO / "mirror") as mirror:
            _configure({f"ENSO_{k.upper()}": str(v) for k, v in mirror.settings_overrides().items()},
                       controller.port)
            print(f"[demo]      serving it at {mirror.url}; SMTP sink on 127.0.0.1:{os.environ['ENSO_SMTP_PORT']}")
            upgrade(os.environ["ENSO_DATABASE_URL"])
            from flows.ingest import backfill_flow
            from flows.monthly import monthly_flow

            print(f"[demo] 2/4 backfill 1891-01..{newest - 1} through Prefect (ephemeral server, SQLite store)",
                  flush=True)
            backfill_flow(start="1891-01", end=str(newest - 1), workers=4)
            print(f"[demo] 3/4 the monthly flow for init month {newest}: ingest, train the CPU preset on the rolling "
                  "windows (no champion yet), forecast, verify, report, email", flush=True)
            summary = monthly_flow(init_month=str(newest))
    finally:
        controller.stop()
    mails = sorted((DEMO / "mail").glob("*.eml"))
    print(f"\n[demo] 4/4 done in {(time.perf_counter() - t0) / 60:.1f} min")
    print(f"  report:   {summary['report']}")
    print(f"  model:    {summary['model']} ({summary['model_choice']})")
    print(f"  email:    {summary['email']}; {len(mails)} message(s) in {DEMO / 'mail'}")
    if mails:
        msg = message_from_bytes(mails[-1].read_bytes(), policy=default_policy)
        print(f"            last: '{msg['Subject']}' to {msg['To']}")
    print("\nNext:")
    print(f"  open {summary['report']} in a browser")
    print(f"  export ENSO_DATABASE_URL=sqlite:///{DEMO / 'enso.sqlite'}")
    print("  .venv/bin/enso status            # what the store holds")
    print("  .venv/bin/enso models list       # the registry")
    print("  sqlite3 var/demo/enso.sqlite 'SELECT * FROM latest_forecast'")
    print("  make test                        # the test suite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
