"""`intake serve | db | report | incidents | classify | transcribe | facilities | tokens | users | bench`.

Every command uses INTAKE_DATABASE_URL when set, else the embedded SQLite file
var/intake.db, and migrates the schema on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from intake.config import ConfigError, Settings, load_settings
from intake.evaluation import cli as evaluation_cli

if TYPE_CHECKING:
    from intake.store.repo import Repo


def _print_json(obj: Any, *, indent: int | None = None) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str, indent=indent), flush=True)


def _fail(message: str, code: int = 2) -> int:
    print(f"intake: error: {message}", file=sys.stderr)
    return code


async def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from intake.store import open_store

    return await open_store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


# --- commands ---------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from intake.web.app import run

    run(settings, args.host or settings.host, args.port or settings.port)
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> str | None:
        store = await _store(settings) if args.action == "upgrade" else None
        from intake.store import Store

        s = store or Store(settings.database_url)
        try:
            return await s.current_revision()
        finally:
            await s.close()

    revision = asyncio.run(go())
    print(f"database {settings.database_url.split('@')[-1]} at revision {revision}")
    return 0


def _report_fields_from_args(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.text is not None:
        fields["text"] = args.text
    for name in ("phone", "lat", "lon", "accuracy", "category", "language"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    return fields


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from intake.channels.app import FIELDS, report_from_fields
    from intake.pipeline import IdempotencyConflict, Intake
    from intake.types import PayloadError

    allowed = frozenset(FIELDS)
    backlog: list[str] = []
    if args.jsonl is not None:
        try:
            if args.jsonl == "-":
                backlog = sys.stdin.readlines()
            else:
                with open(args.jsonl, encoding="utf-8") as fh:
                    backlog = fh.readlines()
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"cannot read {args.jsonl}: {exc}")

    async def go() -> int:
        store = await _store(settings)
        intake = Intake(store, settings)
        failures = 0
        try:
            if args.jsonl is None:
                fields = _report_fields_from_args(args)
                ref = args.ref or uuid.uuid4().hex
                try:
                    report = report_from_fields(fields, channel=args.channel, channel_ref=ref, now=intake.clock())
                    result = await intake.ingest(report)
                except (PayloadError, IdempotencyConflict, ValueError) as exc:
                    return _fail(str(exc))
                out = result.as_dict()
                if args.json:
                    _print_json(out)
                else:
                    print(f"report {out['report_id']} → incident {out['incident_id']} ({out['outcome']}, "
                          f"{out['category']} {out['confidence']:.2f})")
                    for reason in out["reasons"]:
                        print(f"  - {reason['detail']}")
                return 0
            for lineno, line in enumerate(backlog, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise PayloadError("each line must be a JSON object")
                    channel = obj.get("channel") or args.channel
                    if not isinstance(channel, str):
                        raise PayloadError("channel must be a string", field="channel")
                    # A line without its old reference gets one from its content: importing a file twice
                    # stores each report once.
                    ref = obj.get("channel_ref") or "import:" + hashlib.sha256(line.strip().encode()).hexdigest()
                    report = report_from_fields(obj, channel=channel, channel_ref=str(ref),
                                                now=intake.clock(), allowed=allowed)
                    result = await intake.ingest(report)
                    _print_json({"line": lineno, **result.as_dict()})
                except json.JSONDecodeError as exc:
                    failures += 1
                    _print_json({"line": lineno, "error": "invalid_json", "detail": str(exc)})
                except (PayloadError, IdempotencyConflict, ValueError) as exc:
                    failures += 1
                    _print_json({"line": lineno, "error": "invalid", "detail": str(exc)})
            return 1 if failures else 0
        finally:
            await store.close()

    return asyncio.run(go())


def cmd_incidents(args: argparse.Namespace, settings: Settings) -> int:
    from intake.pipeline import incident_payload, report_payload

    async def go() -> int:
        store = await _store(settings)
        try:
            async with store.read() as repo:
                if args.action == "export":
                    return await _export_incident(repo, args, settings)
                if args.action == "show":
                    row = await repo.incident(args.id)
                    if row is None:
                        return _fail(f"incident {args.id} does not exist", 1)
                    data = incident_payload(row)
                    data["reports"] = [report_payload(r) for r in await repo.reports_of_incident(args.id)]
                    data["events"] = await repo.events_of_incident(args.id)
                    _print_json(data, indent=2)
                    return 0
                statuses = args.status.split(",") if args.status else ["open", "acknowledged"]
                rows = await repo.list_incidents(statuses=statuses, limit=args.limit)
        finally:
            await store.close()
        items = [incident_payload(r) for r in rows]
        if args.json:
            _print_json(items)
        else:
            for i in items:
                where = f"{i['lat']:.5f},{i['lon']:.5f} ±{i['accuracy_m']:.0f} m" if i["lat"] is not None else "?"
                print(f"#{i['id']:<6} {i['category']:<8} {i['status']:<12} {i['report_count']:>3} reports  "
                      f"{where}  {(i['location_label'] or '')[:40]}  {i['summary'][:60]}")
        return 0

    return asyncio.run(go())


async def _export_incident(repo: Repo, args: argparse.Namespace, settings: Settings) -> int:
    """`intake incidents export ID --format eido|cap`: the document GET /api/v1/incidents/ID/<format> serves."""
    from intake.dispatch import exports

    try:
        sender = exports.sender_from_settings(settings)
    except ValueError as exc:
        return _fail(f"INTAKE_AGENCY_ID: {exc}")
    row = await repo.incident(args.id)
    if row is None:
        return _fail(f"incident {args.id} does not exist", 1)
    record = exports.IncidentRecord(row, await repo.reports_of_incident(args.id),
                                    await repo.events_of_incident(args.id))
    if args.format == "eido":
        print(exports.eido_json(record, sender, indent=2), flush=True)
    else:
        sys.stdout.buffer.write(exports.cap_xml(record, sender) + b"\n")
        sys.stdout.flush()
    return 0


def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    from intake.core.classify import classify
    from intake.learn.installed import installed_model
    from intake.pipeline import classification_data

    model = installed_model(settings)

    def one(text: str) -> dict[str, Any]:
        data = classification_data(
            classify(text, dialled_number=args.dialled, threshold=settings.classify_threshold, model=model)
        )
        return {"category": data["category"], "confidence": data["confidence"], "evidence": data["evidence"],
                "needs_review": data["needs_review"], "kinds": data["kinds"], "also_notify": data["also_notify"]}

    texts = [args.text] if args.text is not None else (line.rstrip("\n") for line in sys.stdin)
    for text in texts:
        result = one(text)
        if args.json or args.text is None:
            _print_json(result)
        else:
            print(f"{result['category']} ({result['confidence']:.2f})")
            for ev in result["evidence"]:
                mark = " (negated)" if ev["negated"] else ""
                print(f"  {ev['source']}: {ev['term']} → {ev['category']} {ev['weight']:+.2f}{mark}")
    return 0


def cmd_facilities(args: argparse.Namespace, settings: Settings) -> int:
    from intake.facilities import FacilityImportError, import_csv

    async def go() -> int:
        store = await _store(settings)
        try:
            summary = await import_csv(store, args.file, settings, progress=not args.quiet)
        except FacilityImportError as exc:
            return _fail(str(exc), 1)
        finally:
            await store.close()
        print(f"facilities: {summary['created']} created, {summary['updated']} updated, "
              f"{summary['devices']} devices, {summary['located_by_address']} located from their address, "
              f"{summary['unlocated']} without a location")
        return 0

    return asyncio.run(go())


def cmd_tokens(args: argparse.Namespace, settings: Settings) -> int:
    from intake.web.auth import TokenError, create_token

    async def go() -> int:
        store = await _store(settings)
        try:
            token = await create_token(store, role=args.role, name=args.name or f"{args.role}-{uuid.uuid4().hex[:6]}",
                                       agency=args.agency, now=datetime.now(UTC))
        except TokenError as exc:
            return _fail(str(exc))
        finally:
            await store.close()
        print(token)
        return 0

    return asyncio.run(go())


def _read_password(args: argparse.Namespace) -> str:
    """The password from standard input (one line) when it is piped, else asked twice without echo."""
    import getpass

    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    """Console users: people who log in to /console and /board. There is no default user or password."""
    from intake.web import auth

    async def go() -> int:
        store = await _store(settings)
        now = datetime.now(UTC)
        try:
            if args.action == "create":
                user_id = await auth.create_user(store, name=args.name, role=args.role, agency=args.agency,
                                                 password=_read_password(args), now=now)
                print(f"user {args.name} ({args.role}{' ' + args.agency if args.agency else ''}) created, id {user_id}")
            elif args.action == "password":
                await auth.set_password(store, args.name, _read_password(args), now)
                print(f"password of {args.name} changed; their open sessions are ended")
            elif args.action == "disable":
                await auth.disable_user(store, args.name, now)
                print(f"user {args.name} disabled; their open sessions are ended")
            else:
                users = await auth.list_users(store)
                if args.json:
                    _print_json(users)
                for u in users if not args.json else []:
                    state = f"disabled {u['disabled_at']:%Y-%m-%d}" if u["disabled_at"] else "active"
                    print(f"{u['id']:<5} {u['name']:<24} {u['role']:<11} {u['agency'] or '':<8} {state}")
        except (auth.UserError, ValueError) as exc:
            return _fail(str(exc))
        finally:
            await store.close()
        return 0

    return asyncio.run(go())


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "console":
        from intake.web.bench_console import main as bench_console_main

        return bench_console_main(args)
    if args.what == "asr":
        from intake.telephony.asr_cli import bench_asr_main

        return bench_asr_main(args.calls, args.audio, args.json, args.warmup)
    if args.what == "calls":
        from intake.testbed.bench_calls import main as bench_calls_main

        try:
            rates = [float(r) for r in args.rate.split(",") if r.strip()]
        except ValueError:
            return _fail(f"--rate: {args.rate!r} is not a comma list of calls per second")
        if not rates or any(r <= 0 for r in rates) or args.calls < 1 or args.talk <= 1:
            return _fail("--rate must be positive, --calls at least 1 and --talk more than 1 s")
        return bench_calls_main(rates, args.calls, args.talk, args.json)
    from intake import bench

    return bench.main(args, settings)


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    from intake.telephony.asr_cli import transcribe_main

    return transcribe_main(args.file, args.lang, args.json)


# --- parser ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intake", description="Hotline Intake: one number, one incident queue.")
    p.add_argument("--config", help="a TOML settings file (else INTAKE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP server")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("db", help="database schema")
    s.add_argument("action", choices=["upgrade", "current"])
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("report", help="ingest a report (or a JSON-lines backlog)")
    s.add_argument("--text")
    s.add_argument("--phone")
    s.add_argument("--lat", type=float)
    s.add_argument("--lon", type=float)
    s.add_argument("--accuracy", type=float, help="metres")
    s.add_argument("--category", help="fire | police | medical: the reporter's own choice")
    s.add_argument("--language")
    s.add_argument("--channel", default="app")
    s.add_argument("--ref", help="channel reference (default: a new one)")
    s.add_argument("--jsonl", metavar="FILE", help="one report a line ('-' for standard input)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("incidents", help="the incident queue")
    isub = s.add_subparsers(dest="action", required=True)
    li = isub.add_parser("list")
    li.add_argument("--status", help="comma list (default open,acknowledged)")
    li.add_argument("--limit", type=int, default=100)
    li.add_argument("--json", action="store_true")
    sh = isub.add_parser("show")
    sh.add_argument("id", type=int)
    ex = isub.add_parser("export", help="print the incident as a NENA EIDO (JSON) or an OASIS CAP 1.2 alert (XML)")
    ex.add_argument("id", type=int)
    ex.add_argument("--format", required=True, choices=["eido", "cap"])
    s.set_defaults(func=cmd_incidents)

    s = sub.add_parser("classify", help="classify a text (or one text a line from standard input)")
    s.add_argument("text", nargs="?")
    s.add_argument("--dialled", help="the line dialled: 112, 113, 114, 115")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_classify)
    evaluation_cli.register(sub)

    s = sub.add_parser("facilities", help="the registry of buildings with alarm devices")
    fsub = s.add_subparsers(dest="action", required=True)
    fi = fsub.add_parser("import")
    fi.add_argument("file")
    fi.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_facilities)

    s = sub.add_parser("tokens", help="API tokens")
    tsub = s.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create")
    tc.add_argument("--role", required=True, help="admin | calltaker | dispatcher | app")
    tc.add_argument("--agency", help="fire | police | medical (dispatcher tokens)")
    tc.add_argument("--name")
    s.set_defaults(func=cmd_tokens)

    s = sub.add_parser("users", help="people who log in to the console and the board (no default password)")
    usub = s.add_subparsers(dest="action", required=True)
    uc = usub.add_parser("create", help="the password is read from standard input, or asked for")
    uc.add_argument("--name", required=True)
    uc.add_argument("--role", required=True, choices=["calltaker", "dispatcher", "admin"])
    uc.add_argument("--agency", choices=["fire", "police", "medical"], help="a dispatcher's agency")
    uc.add_argument("--password-stdin", action="store_true", help="read one line from standard input")
    up = usub.add_parser("password", help="set a new password (ends the user's sessions)")
    up.add_argument("--name", required=True)
    up.add_argument("--password-stdin", action="store_true")
    ud = usub.add_parser("disable", help="the user can no longer log in (ends their sessions)")
    ud.add_argument("--name", required=True)
    ul = usub.add_parser("list")
    ul.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users)

    s = sub.add_parser("transcribe", help="transcribe a WAV file with Vosk, then classify it")
    s.add_argument("file")
    s.add_argument("--lang", help="model language (default: the first configured)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("bench", help="measure speed")
    bsub = s.add_subparsers(dest="what", required=True)
    bi = bsub.add_parser("ingest", help="reports/s and latency as open incidents grow")
    bi.add_argument("--json", action="store_true")
    bi.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    bi.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/intake_bench",
                    help="a database of its own: it is dropped and made anew")
    bi.add_argument("--open", default="1000,10000,100000", help="open-incident levels to measure at")
    bi.add_argument("--reports", type=int, default=2000, help="reports measured at each level")
    bi.add_argument("--concurrency", default="1,32",
                    help="reports in flight at once; a comma list measures each (1 shows latency, 32 throughput)")
    bi.add_argument("--duplicate-rate", type=float, default=0.3)
    bc = bsub.add_parser("console", help="screen-pop latency: AMI Newchannel (replayed) to the card in a real browser")
    bc.add_argument("--calls", type=int, default=100)
    bc.add_argument("--gap", type=float, default=0.25, help="seconds between two calls' Newchannel")
    bc.add_argument("--speed", type=float, default=10.0, help="how much faster than recorded each call plays")
    bc.add_argument("--json", action="store_true")
    bc.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary Playwright drives")
    ba = bsub.add_parser("asr", help="concurrent calls transcribed in real time, against a naive baseline")
    ba.add_argument("--calls", type=int, default=4)
    ba.add_argument("--audio", help="a mono WAV to play as every call (default: a bundled test recording)")
    ba.add_argument("--warmup", help="a WAV of speech to warm the recognizers on before the first calls "
                                     "(as INTAKE_ASR_WARMUP does for intake serve)")
    ba.add_argument("--json", action="store_true")
    bk = bsub.add_parser("calls", help="calls through a real Asterisk: screen-pop latency from Asterisk's own "
                                       "timestamps, transcripts paired, lost, late")
    bk.add_argument("--rate", default="1,5,10", help="calls a second; a comma list measures each")
    bk.add_argument("--calls", type=int, default=10, help="calls at each rate")
    bk.add_argument("--talk", type=float, default=8.0, help="seconds each caller talks after the answer")
    bk.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config_file=args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
