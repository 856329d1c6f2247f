"""``watui run NAME``: send a campaign to the end, headless, with a one-line progress display;
``watui retry NAME``: requeue failed or in-doubt recipients for scripts."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from watui.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PAUSED, CliError
from watui.cli.linger import listen_for_statuses
from watui.engine.metrics import NumberFigures, NumberState
from watui.engine.numbers import NUMBER_EVENT, NumbersSender
from watui.engine.runner import CampaignNotRunnable, Prepared, run_campaign
from watui.engine.sender import CampaignSender, RunOutcome, RunStatus
from watui.errors import ReceiverError
from watui.receiver import applying_receiver
from watui.rules import WINDOW_WAIT_REASON, RecipientStatus, outage_line, rate_problem
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import review, timing
from watui.storage.database import Database
from watui.storage.rows import CampaignRecord

PROGRESS_INTERVAL = 0.5


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="send a campaign to the end (headless)")
    run.add_argument("name", nargs="?", help="campaign name")
    run.add_argument("--due", action="store_true", help="run every campaign due now (its start "
                     "time has come), one after another, then return: for cron")
    run.add_argument("--rate", type=_positive_rate, help="messages/s for this run (default: settings)")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--linger", type=_seconds, metavar="S", help="with webhook.enabled: once "
                     "sent, keep receiving statuses up to S seconds (default: webhook.linger_s)")
    run.set_defaults(handler=_run_command)

    retry = subparsers.add_parser("retry", help="requeue failed or in-doubt recipients")
    retry.add_argument("name", help="campaign name")
    retry.add_argument("--in-doubt", action="store_true", help="requeue in-doubt recipients "
                       "(they may already have the message: a resend can duplicate)")
    retry.add_argument("--failed", action="store_true", help="requeue failed recipients")
    retry.add_argument("--unconfirmed", action="store_true", help="requeue unconfirmed recipients "
                       "(in doubt, and no status webhook came for them: almost surely never sent)")
    retry.add_argument("--code", type=int, help="with --failed: only those that failed with this code")
    retry.set_defaults(handler=_retry_command)


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if problem := rate_problem(value):
        raise argparse.ArgumentTypeError(problem.message)
    return value


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None


def _run_command(args: argparse.Namespace) -> int:
    from watui.cli.main import settings_from_args

    if args.due == bool(args.name):
        raise CliError("give a campaign NAME, or --due to run every campaign due now (not both)")
    linger = None if args.linger is None else {"webhook": {"linger_s": args.linger}}
    settings = settings_from_args(args, linger)
    if linger and not settings.webhook.enabled:
        raise CliError("--linger listens for status webhooks: turn the receiver on with "
                       "WATUI_WEBHOOK__ENABLED=true (setting webhook.enabled), or drop --linger")
    if args.due:
        return _run_due_command(settings, args)
    display = ProgressLine(enabled=not args.quiet)
    try:
        outcome, prepared = asyncio.run(_run_with_receiver(settings, args.name, args.rate, display))
    except (CampaignNotRunnable, ReceiverError) as error:
        raise CliError(str(error)) from None
    finally:
        display.stop()
    return asyncio.run(_summarise(settings.database_url, prepared, outcome.status, outcome.reason))


def _run_due_command(settings: Settings, args: argparse.Namespace) -> int:
    """Each campaign due now, in turn; one outside every recipient's window is left paused
    (WINDOW_WAIT_REASON) for the next --due. The worst exit code of them all."""
    async def due_names() -> list[str]:
        async with Database(settings.database_url) as db:
            return [row.name for row in await timing.due_campaigns(db, time.time())]

    names = asyncio.run(due_names())
    if not names:
        print("no campaign is due", file=sys.stderr)
    codes = [EXIT_OK]
    for name in names:
        display = ProgressLine(enabled=not args.quiet)
        try:
            outcome, prepared = asyncio.run(
                _run_with_receiver(settings, name, args.rate, display, due=True)
            )
        except (CampaignNotRunnable, ReceiverError) as error:
            raise CliError(str(error)) from None
        finally:
            display.stop()
        if outcome.reason == WINDOW_WAIT_REASON:
            print(f"{name}: {outcome.reason}; the next 'watui run --due' carries on",
                  file=sys.stderr)
            continue
        codes.append(asyncio.run(
            _summarise(settings.database_url, prepared, outcome.status, outcome.reason)
        ))
        if outcome.status is RunStatus.STOPPED:
            break
    return max(codes)


async def _run_with_receiver(
    settings: Settings, name: str, rate: float | None, display: ProgressLine, *, due: bool = False
) -> tuple[RunOutcome, Prepared]:
    """The run, with the webhook receiver (and its applier) beside it when webhook.enabled;
    ``due``: pause outside every recipient's window instead of waiting (run --due)."""
    if not settings.webhook.enabled:
        return await run_campaign(
            settings, name, rate=rate, on_start=display.start, leave_outside_windows=due
        )
    async with Database(settings.database_url) as db:
        receiver = applying_receiver(db, settings)
        url = await receiver.start()
        print(f"receiving webhooks on {url}", file=sys.stderr, flush=True)
        try:
            outcome, prepared = await run_campaign(
                settings, name, rate=rate, on_start=display.start, leave_outside_windows=due
            )
            if outcome.status is RunStatus.COMPLETED:
                display.stop()
                await listen_for_statuses(db, receiver, prepared.campaign_id,
                                          settings.webhook.linger_s, show=display.enabled)  # fmt: skip
        finally:
            await receiver.stop()
        return outcome, prepared


async def _summarise(url: str, prepared: Prepared, status: RunStatus, reason: str | None) -> int:
    async with Database(url) as db:
        row = await campaign_store.campaign_row(db, prepared.campaign_id)
    print(
        f"{prepared.name}: {status.value}; sent {row.sent}, failed {row.failed}, "
        f"in doubt {row.in_doubt}, skipped {row.skipped} of {row.total}"
        + (f"; delivered {row.delivered}, read {row.read}, failed after acceptance "
           f"{row.failed_after}" if row.delivered or row.read or row.failed_after else ""),
        file=sys.stderr,
    )
    if row.in_doubt:
        print(
            f"{row.in_doubt} recipients are in doubt (a request may have been delivered): review "
            f"them, then 'watui retry {prepared.name} --in-doubt' to resend",
            file=sys.stderr,
        )
    if status is RunStatus.PAUSED:
        print(f"paused: {reason}", file=sys.stderr)
        return EXIT_PAUSED
    if status is RunStatus.STOPPED:
        return EXIT_INTERRUPTED
    return EXIT_OK


#: Engine events worth a line of their own while `watui run` sends (the rest show in the UI).
NOTABLE_EVENTS = {"warning", "throttled", "shared", "waiting", "outage", NUMBER_EVENT}


class ProgressLine:
    """One live line on stderr: rate, progress, ETA, failures (quiet when not a terminal), and
    above it a line for each notable engine event, such as a pool too small for the rate. The
    events are printed even with --quiet: they say why a run is slower than asked."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._task: asyncio.Task[None] | None = None
        self._tty = sys.stderr.isatty()
        self._stopped = False

    async def start(self, sender: CampaignSender | NumbersSender, prepared: Prepared) -> None:
        if prepared.resumed_from:
            print(f"resuming {prepared.name} (it had paused: {prepared.resumed_from})", file=sys.stderr)
        self._task = asyncio.create_task(self._loop(sender, prepared))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
        if self.enabled and self._tty:
            print(file=sys.stderr)

    async def _loop(self, sender: CampaignSender | NumbersSender, prepared: Prepared) -> None:
        last_line = 0.0
        seen = 0
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            for event in sender.metrics.events_since(seen):
                seen = max(seen, event.seq)
                if event.kind in NOTABLE_EVENTS:
                    clear = "\r\x1b[K" if self.enabled and self._tty else ""
                    print(f"{clear}watui: {event.kind}: {event.text}", file=sys.stderr, flush=True)
            if not self.enabled:
                continue
            try:
                row = await campaign_store.campaign_row(sender.db, prepared.campaign_id)
            except Exception:
                continue
            line = _format_progress(sender, row)
            if self._tty:
                print(f"\r{line}\x1b[K", end="", file=sys.stderr, flush=True)
            elif time.monotonic() - last_line >= 5:
                print(line, file=sys.stderr, flush=True)
                last_line = time.monotonic()


def _format_progress(sender: CampaignSender | NumbersSender, row: CampaignRecord) -> str:
    snapshot = sender.metrics.snapshot(seconds=10)
    pending = row.pending
    done = row.total - pending
    rate = snapshot.current_rate
    eta = f"{pending / rate:,.0f}s" if rate > 0 else "--"
    percent = 100.0 * done / row.total if row.total else 100.0
    outage = snapshot.outage
    speed = (
        f"{rate:,.0f} msg/s (target {snapshot.target_rate:g})" if outage is None
        else outage_line(outage.since, outage.retry_at, time.time(), outage.checking_every)
    )
    return (
        f"{row.name}: {speed} | "
        f"{done:,}/{row.total:,} ({percent:.1f}%) | ETA {eta} | "
        f"failed {row.failed:,} | retrying {snapshot.retried_total:,} | in flight "
        f"{snapshot.in_flight}/{snapshot.connections}"
        + _numbers_part(snapshot.numbers)
        + (f" | waiting: {waiting}" if (waiting := sender.waiting_reason) else "")
    )


def _numbers_part(numbers: tuple[NumberFigures, ...]) -> str:
    """A campaign of several numbers: each one's rate, or why it is not sending from here
    (``1000001 80/s, 1000002 paused, 1000003 elsewhere``)."""
    if len(numbers) < 2:
        return ""
    return " | " + ", ".join(
        f"{n.phone_number_id} {n.current_rate:,.0f}/s" if n.state == NumberState.SENDING
        else f"{n.phone_number_id} {_SHORT_STATES.get(n.state, n.state)}"
        for n in numbers
    )


_SHORT_STATES: dict[str, str] = {NumberState.ELSEWHERE: "elsewhere"}


def _retry_command(args: argparse.Namespace) -> int:
    from watui.cli.main import settings_from_args

    if not (args.in_doubt or args.failed or args.unconfirmed):
        raise CliError("say what to requeue: --failed, --in-doubt and/or --unconfirmed")
    if args.code is not None and not args.failed:
        raise CliError("--code goes with --failed")
    settings = settings_from_args(args)
    statuses = [s for s, wanted in ((RecipientStatus.FAILED, args.failed),
                                    (RecipientStatus.IN_DOUBT, args.in_doubt),
                                    (RecipientStatus.UNCONFIRMED, args.unconfirmed)) if wanted]
    return asyncio.run(_retry(settings.database_url, args.name, statuses, args.code))


async def _retry(url: str, name: str, statuses: list[RecipientStatus], code: int | None) -> int:
    async with Database(url) as db:
        row = await campaign_store.campaign_by_name(db, name)
        if row is None:
            raise CliError(f"no campaign named {name!r} (see 'watui campaign list')")
        moved = await review.requeue(db, row.id, statuses=statuses, code=code)
    print(f"requeued {moved} recipients of {name}; 'watui run {name}' sends them")
    return EXIT_OK
