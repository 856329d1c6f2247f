"""Campaign setup: name, template, contacts, parameter mapping, validation, rate, test send.

Every check shows its message beside the field it is about; nothing is queued until the
contacts have been validated and the form is complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, DataTable, Header, Input, Select, Static

from watui.errors import CampaignExists, ContactsError, InvalidCampaign, WatuiError
from watui.rules import (
    AUTO_ENDPOINT,
    PLACEHOLDER,
    Endpoint,
    Field,
    Problem,
    duplicate_button_problem,
    header_takes_param,
    max_retries_problem,
    retry_delays_problem,
    schedule_from_text,
    senders_problem,
)
from watui.service.models import (
    ButtonColumn,
    CampaignRow,
    CampaignSpec,
    ContactsPreview,
    StepSpec,
    TemplateInfo,
    ValidationReport,
)
from watui.tui import format as fmt
from watui.tui.messages import OpenMonitor
from watui.tui.screens.base import WatuiScreen
from watui.tui.widgets.file_picker import FilePickerModal
from watui.tui.widgets.form import FormField
from watui.tui.widgets.keybar import KeyBar
from watui.tui.widgets.modals import parse_rate
from watui.tui.widgets.text_input import TextInput

#: The form field that sets each part of a campaign: a problem the backend finds is marked there.
FIELD_WIDGETS: dict[Field, str] = {
    Field.NAME: "f-name",
    Field.TEMPLATE: "f-template",
    Field.LANGUAGE: "f-language",
    Field.CONTACTS: "f-contacts",
    Field.PHONE_COLUMN: "f-phone",
    Field.DEFAULT_REGION: "f-region",
    Field.BODY_PARAMS: "f-body",
    Field.HEADER_PARAM: "f-header",
    Field.BUTTONS: "f-buttons",
    Field.RATE: "f-rate",
    Field.MAX_RETRIES: "f-retries",
    Field.RETRY_DELAYS: "f-delays",
    Field.SENDERS: "f-senders",
    Field.START_AT: "f-start",
    Field.SEND_WINDOW: "f-window",
    Field.DEADLINE: "f-deadline",
    Field.EXCLUDE: "f-exclude",
    Field.ENDPOINT: "f-endpoint",
}
#: Where a campaign's messages go (rules.endpoint_for decides for "auto").
ENDPOINT_OPTIONS = [
    ("auto (by template category)", AUTO_ENDPOINT),
    ("messages", Endpoint.MESSAGES.value),
    ("marketing_messages", Endpoint.MARKETING_MESSAGES.value),
]
T = TypeVar("T")

PREVIEW_ROWS = 5
REPORT_LINES = 5
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str | None:
    if not name:
        return "give the campaign a name"
    if not NAME_PATTERN.match(name):
        return "use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit"
    return None


def parse_columns(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def check_body_params(
    columns: tuple[str, ...], template: TemplateInfo, available: tuple[str, ...]
) -> str | None:
    """The mapping must name one existing column per {{n}} of the template's body."""
    if len(columns) != template.param_count:
        return (
            f"the template needs {template.param_count} column(s) for "
            f"{{{{1}}}}..{{{{{template.param_count}}}}}; {len(columns)} given"
        )
    missing = [column for column in columns if available and column not in available]
    if missing:
        return f"no column {', '.join(missing)} in the file"
    return None


def needs_header_param(template: TemplateInfo) -> bool:
    return header_takes_param(template.header_format, template.header_text)


def button_hint(template: TemplateInfo) -> str:
    """The template's buttons that take a column, and which of them must."""
    parts = []
    for index, button in enumerate(template.buttons):
        if button.needs_param:
            parts.append(f"{index}: URL {escape(button.url or '')} (needs a column)")
        elif button.takes_param:
            parts.append(f"{index}: quick reply {escape(repr(button.text))} (payload, optional)")
    return "; ".join(parts)


def parse_button_params(
    text: str, template: TemplateInfo, available: tuple[str, ...]
) -> tuple[ButtonColumn, ...]:
    """``0:tracking_code, 1:payload`` into the button columns; ValueError says what to fix.
    The kind comes from the template: a URL takes its suffix, a quick reply its payload."""
    given: list[ButtonColumn] = []
    for part in parse_columns(text):
        index_text, _, column = (piece.strip() for piece in part.partition(":"))
        if not index_text.isdigit() or not column:
            raise ValueError(f"{part!r} is not INDEX:COLUMN, e.g. 0:tracking_code")
        index = int(index_text)
        if index >= len(template.buttons) or not template.buttons[index].takes_param:
            raise ValueError(f"button {index} takes no parameter; {button_hint(template)}")
        if available and column not in available:
            raise ValueError(f"no column {column!r} in the file")
        given.append(ButtonColumn(index, template.buttons[index].kind, column))
    if problem := duplicate_button_problem(given):
        raise ValueError(problem.message)
    mapped = {button.index for button in given}
    missing = [i for i, button in enumerate(template.buttons) if button.needs_param and i not in mapped]
    if missing:
        url = escape(template.buttons[missing[0]].url or "")
        raise ValueError(f"button {missing[0]} (URL {url}) needs a column")
    return tuple(sorted(given, key=lambda button: button.index))


def parse_retries(text: str) -> int:
    retries = int(text) if text.isdigit() else text
    if problem := max_retries_problem(retries):
        raise ValueError(problem.message)
    return int(text)


def parse_delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in parse_columns(text))
    except ValueError:
        raise ValueError("seconds separated by commas, e.g. 5, 10") from None
    if problem := retry_delays_problem(delays):
        raise ValueError(problem.message)
    return delays


def parse_senders(text: str) -> tuple[str, ...]:
    """Phone number IDs separated by commas; empty: the configured number."""
    senders = tuple(parse_columns(text))
    if senders and (problem := senders_problem(senders)):
        raise ValueError(problem.message)
    return senders


def template_key(template: TemplateInfo) -> str:
    return f"{template.name}|{template.language}"


def preview_text(template: TemplateInfo) -> str:
    body = escape(template.body)
    body = PLACEHOLDER.sub(r"[b $accent]\g<0>[/]", body)
    facts = [f"{template.param_count} parameter(s)", template.category.lower(), template.language]
    if template.header_format:
        facts.append(f"header: {template.header_format}")
    if template.buttons:
        facts.append(f"buttons: {', '.join(escape(button.text) for button in template.buttons)}")
    return f"{body}\n[dim]{' · '.join(facts)}[/dim]"


def report_text(report: ValidationReport) -> str:
    lines = [
        f"[$success]✔ {fmt.count(report.valid)} valid[/] · "
        f"[$error]{fmt.count(report.invalid_total)} invalid[/] · "
        f"[$warning]{fmt.count(report.duplicate_total)} duplicate(s)[/] "
        "(invalid and duplicate rows are not queued)"
    ]
    for rejected in (*report.invalid, *report.duplicates)[:REPORT_LINES]:
        lines.append(
            f"  line {rejected.line}: {escape(rejected.value)!r} {escape(rejected.reason)}"
        )
    hidden = report.invalid_total + report.duplicate_total - REPORT_LINES
    if hidden > 0:
        lines.append(f"  … and {fmt.count(hidden)} more (all listed by 'watui campaign rejects')")
    return "\n".join(lines)


class SetupScreen(WatuiScreen):
    """Create a campaign step by step; start it now or keep it as a draft."""

    LIVE = False
    CSS_PATH = "setup.tcss"
    HELP_TITLE = "Campaign setup"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "browse", "Browse files"),
        Binding("ctrl+s", "save(False)", "Save draft"),
        Binding("ctrl+r", "save(True)", "Start now"),
        Binding("ctrl+t", "dry_run", "Dry run"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.templates: dict[str, TemplateInfo] = {}
        self.steps: list[StepSpec] = []
        self.columns: tuple[str, ...] = ()
        self.report: ValidationReport | None = None
        #: The draft a dry run saved: saving or starting then goes on with it.
        self.checked_draft: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="form"):
            yield Static("Campaign", classes="section-title")
            yield FormField(
                "Name", TextInput(compact=True, id="name", placeholder="e.g. spring-sale"), id="f-name"
            )
            yield Static("Step 1", classes="section-title", id="step-title")
            yield FormField(
                "Template",
                Select([], id="template", prompt="approved templates", compact=True),
                id="f-template",
            )
            yield Static("", id="template-preview", classes="preview")
            yield FormField(
                "Language",
                TextInput(compact=True, id="language", placeholder="e.g. en_US"),
                id="f-language",
            )
            yield FormField(
                "Contacts file",
                TextInput(compact=True, id="contacts", placeholder="path/to/contacts.csv"),
                Button("Browse…", id="browse", compact=True),
                id="f-contacts",
            )
            yield FormField(
                "Phone column", TextInput("phone", id="phone-column", compact=True), id="f-phone"
            )
            yield FormField(
                "Default region",
                TextInput(compact=True, id="region", placeholder="e.g. US", max_length=2),
                hint="for numbers written without +country code",
                id="f-region",
            )
            preview: DataTable[str] = DataTable(id="contacts-preview", show_cursor=False)
            preview.display = False
            yield preview
            yield FormField(
                "Body parameters",
                TextInput(
                    compact=True,
                    id="body-params",
                    placeholder="columns for {{1}}, {{2}}, … separated by commas",
                ),
                id="f-body",
            )
            yield FormField(
                "Header parameter",
                TextInput(
                    compact=True,
                    id="header-param",
                    placeholder="column with the header's media link or text",
                ),
                id="f-header",
            )
            yield FormField(
                "Button parameters",
                TextInput(
                    compact=True, id="button-params", placeholder="INDEX:COLUMN, … e.g. 0:tracking_code"
                ),
                id="f-buttons",
            )
            with Horizontal(classes="buttons"):
                yield Button("Validate contacts", id="validate", compact=True)
                yield Button("Add another step", id="add-step", compact=True)
            yield Static("", id="report")
            yield Static("", id="steps")
            yield Static("Sending", classes="section-title")
            yield FormField(
                "Rate (msg/s)",
                TextInput(compact=True, id="rate"),
                id="f-rate",
                hint="your number's tier: 80, or 1,000 at the top",
            )
            yield FormField(
                "Sender numbers", TextInput(compact=True, id="senders"), id="f-senders",
                hint="phone number IDs, separated by commas; each person always hears from one",
            )
            yield FormField("Max retries", TextInput(compact=True, id="max-retries"), id="f-retries")
            yield FormField(
                "Retry delays (s)", TextInput(compact=True, id="retry-delays"), id="f-delays"
            )
            yield FormField(
                "Start at",
                TextInput(compact=True, id="start-at", placeholder="e.g. 2026-12-07T09:00 Europe/Madrid"),
                hint="empty: when started; with an offset or zone name",
                id="f-start",
            )
            yield FormField(
                "Send window",
                TextInput(compact=True, id="send-window", placeholder="e.g. 09:00-20:00"),
                hint="in each recipient's local time (a tz column overrides the number's zone)",
                id="f-window",
            )
            yield FormField(
                "Deadline",
                TextInput(compact=True, id="deadline", placeholder="e.g. 2026-12-08T20:00+01:00"),
                hint="past it the campaign pauses rather than send late",
                id="f-deadline",
            )
            yield FormField(
                "Exclude (CSV)",
                TextInput(compact=True, id="exclude", placeholder="numbers not to message"),
                id="f-exclude",
            )
            yield FormField(
                "Endpoint",
                Select(ENDPOINT_OPTIONS, id="endpoint", value=AUTO_ENDPOINT, allow_blank=False,
                       compact=True),
                id="f-endpoint",
                hint="auto: MARKETING templates to marketing_messages when that setting is on",
            )  # fmt: skip
            yield Static("Test send", classes="section-title")
            yield FormField(
                "Test number",
                TextInput(compact=True, id="test-phone", placeholder="+15550123456"),
                Button("Send test", id="send-test", compact=True),
                id="f-test",
            )
            yield Static("", id="test-result")
            yield Static("", id="check")
            yield Static("", id="form-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Start now", id="start", variant="success")
                yield Button("Save as draft", id="draft", variant="primary")
                yield Button("Cancel", id="cancel")
        yield KeyBar()

    async def refresh_data(self) -> None:
        """Load templates and the defaults (rate, retries) once, when the screen opens."""
        self.sub_title = "New campaign"
        try:
            templates = await self.backend.list_templates()
        except WatuiError as error:
            self.field("f-template").set_error(str(error))
            templates = []
        self.templates = {template_key(template): template for template in templates}
        options = [(f"{t.name} ({t.language})", key) for key, t in self.templates.items()]
        self.query_one("#template", Select).set_options(options)
        if not templates:
            self.field("f-template").set_hint("No approved templates: run 'watui templates sync'")
        defaults = {row.name: row.value for row in self.backend.settings_view()}
        self.query_one("#rate", Input).value = defaults.get("send.rate", "80")
        self.query_one("#max-retries", Input).value = defaults.get("retry.max_retries", "2")
        self.query_one("#retry-delays", Input).value = defaults.get("retry.delays", "5, 10")
        self.field("f-header").display = False
        self.field("f-buttons").display = False
        self.query_one("#name", Input).focus()
        await self._offer_senders(defaults.get("whatsapp.phone_number_id", ""))

    async def _offer_senders(self, configured: str) -> None:
        """The configured number as the placeholder; the account's numbers, when known, in the
        hint (``watui numbers`` or the numbers screen asks the API for them)."""
        self.query_one("#senders", Input).placeholder = f"default: {configured or 'not set'}"
        try:
            known = (await self.backend.list_numbers(refresh=False)).numbers
        except WatuiError:
            return
        ids = [f"{n.phone_number_id} ({n.display_number})" for n in known if n.phone_number_id]
        if ids:
            self.field("f-senders").set_hint("known: " + ", ".join(ids))

    def field(self, field_id: str) -> FormField:
        return self.query_one(f"#{field_id}", FormField)

    def value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value.strip()

    @property
    def template(self) -> TemplateInfo | None:
        value = self.query_one("#template", Select).value
        return None if value is Select.NULL else self.templates.get(str(value))

    # -- reacting to input -----------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        template = self.template
        self.field("f-template").set_error(None)
        preview = self.query_one("#template-preview", Static)
        if template is None:
            preview.update("")
            return
        preview.update(preview_text(template))
        self.query_one("#language", Input).value = template.language
        self.field("f-header").display = needs_header_param(template)
        buttons = self.field("f-buttons")
        buttons.display = any(button.takes_param for button in template.buttons)
        buttons.set_hint(button_hint(template))
        self._hint_columns()

    def on_input_changed(self, event: Input.Changed) -> None:
        field = event.input.id
        owner = next((node for node in event.input.ancestors if isinstance(node, FormField)), None)
        if owner is not None:
            owner.set_error(None)
        if field in ("contacts", "phone-column", "region"):
            self.report = None
            self.query_one("#report", Static).update("")
            self.load_preview()

    @work(group="preview", exclusive=True, exit_on_error=False)
    async def load_preview(self) -> None:
        path = Path(self.value("contacts")).expanduser()
        table = self.query_one("#contacts-preview", DataTable)
        if not self.value("contacts") or not path.is_file():
            table.display = False
            self.columns = ()
            return
        try:
            preview = await self.backend.preview_contacts(
                path,
                self.value("phone-column") or "phone",
                self.value("region") or None,
                PREVIEW_ROWS,
            )
        except WatuiError as error:
            self.field("f-contacts").set_error(str(error))
            table.display = False
            self.columns = ()
            return
        self._show_preview(preview)

    def _show_preview(self, preview: ContactsPreview) -> None:
        self.columns = preview.columns
        table = self.query_one("#contacts-preview", DataTable)
        table.clear(columns=True)
        table.add_columns(*preview.columns)
        table.add_rows(preview.rows)
        table.display = True
        # A height:auto table shown and filled in one go is not re-measured on its own.
        self.query_one("#form").refresh(layout=True)
        phone = self.value("phone-column") or "phone"
        self.field("f-phone").set_error(
            None
            if phone in preview.columns
            else f"no column {phone!r}; the file has: {', '.join(preview.columns)}"
        )
        self._hint_columns()

    def _hint_columns(self) -> None:
        template = self.template
        parts = []
        if template is not None:
            parts.append(f"the template needs {template.param_count}")
        if self.columns:
            parts.append(f"columns: {', '.join(self.columns)}")
        self.field("f-body").set_hint("; ".join(parts))

    # -- buttons and keys -------------------------------------------------------------------
    async def on_button_pressed(self, event: Button.Pressed) -> None:
        actions: dict[str, Callable[[], object]] = {
            "browse": self.action_browse,
            "validate": self.validate_contacts,
            "add-step": self.add_step,
            "send-test": self.send_test,
            "start": lambda: self.action_save(True),
            "draft": lambda: self.action_save(False),
            "cancel": self.action_back,
        }
        if event.button.id in actions:
            actions[event.button.id]()

    def action_browse(self) -> None:
        current = Path(self.value("contacts")).expanduser()
        start = (
            current.parent
            if current.parent.is_dir() and self.value("contacts")
            else (self.watui.start_dir)
        )

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.query_one("#contacts", Input).value = str(path)

        self.app.push_screen(FilePickerModal(start), chosen)

    def action_back(self) -> None:
        self.app.pop_screen()

    @work(group="setup", exclusive=True, exit_on_error=False)
    async def validate_contacts(self) -> ValidationReport | None:
        """Check the current step's contacts file and show the report."""
        step = self.collect_step()
        if step is None:
            return None
        try:
            report = await self.backend.validate_contacts(
                Path(step.contacts), step.phone_column, step.default_region
            )
        except WatuiError as error:
            self.field("f-contacts").set_error(str(error))
            return None
        self.report = report
        self.query_one("#report", Static).update(report_text(report))
        if report.valid == 0:
            self.field("f-contacts").set_error("no valid contact in this file")
        return report

    def add_step(self) -> None:
        """Keep the current step and clear the step fields for the next template."""
        step = self.collect_step()
        if step is None:
            return
        self.steps.append(step)
        self.query_one("#template", Select).clear()
        for input_id in ("contacts", "body-params", "header-param", "button-params", "language"):
            self.query_one(f"#{input_id}", Input).value = ""
        self.query_one("#step-title", Static).update(f"Step {len(self.steps) + 1}")
        self.query_one("#steps", Static).update(
            "Steps so far:\n"
            + "\n".join(
                f"  {index}. {escape(s.template)} ({s.language}) ← {escape(Path(s.contacts).name)}"
                for index, s in enumerate(self.steps, start=1)
            )
        )
        self.query_one("#template", Select).focus()

    @work(group="setup", exclusive=True, exit_on_error=False)
    async def send_test(self) -> None:
        phone = self.value("test-phone")
        step = self.collect_step()
        result_line = self.query_one("#test-result", Static)
        if not phone:
            self.field("f-test").set_error("enter a phone number with its country code")
        if step is None or not phone:
            return
        try:
            result = await self.backend.send_test(step, phone)
        except WatuiError as error:
            self.field("f-test").set_error(str(error))
            return
        mark = "[$success]✔" if result.ok else "[$error]✖"
        result_line.update(f"{mark} {escape(result.detail)}[/]")

    # -- collecting and checking ------------------------------------------------------------
    def collect_step(self) -> StepSpec | None:
        """The current step, or None after marking every field that is wrong."""
        template = self.template
        ok = True
        if template is None:
            self.field("f-template").set_error("pick a template")
            ok = False
        language = self.value("language")
        if not language:
            self.field("f-language").set_error("the template's language code, e.g. en_US")
            ok = False
        contacts = self.value("contacts")
        path = Path(contacts).expanduser()
        if not contacts:
            self.field("f-contacts").set_error("choose the contacts file (Browse… or ctrl+o)")
            ok = False
        elif not path.is_file():
            self.field("f-contacts").set_error(f"no file at {contacts}")
            ok = False
        phone = self.value("phone-column") or "phone"
        if self.columns and phone not in self.columns:
            self.field("f-phone").set_error(f"no column {phone!r} in the file")
            ok = False
        region = self.value("region").upper() or None
        if region and not re.fullmatch(r"[A-Z]{2}", region):
            self.field("f-region").set_error("two letters, e.g. US, BR, DE")
            ok = False
        body = parse_columns(self.value("body-params"))
        if template is not None and (problem := check_body_params(body, template, self.columns)):
            self.field("f-body").set_error(problem)
            ok = False
        header = self.value("header-param") or None
        if template is not None and needs_header_param(template):
            if header is None:
                self.field("f-header").set_error(
                    f"this template's {template.header_format} header needs a column"
                )
                ok = False
            elif self.columns and header not in self.columns:
                self.field("f-header").set_error(f"no column {header!r} in the file")
                ok = False
        buttons: tuple[ButtonColumn, ...] = ()
        if template is not None:
            try:
                buttons = parse_button_params(self.value("button-params"), template, self.columns)
            except ValueError as error:
                self.field("f-buttons").set_error(str(error))
                ok = False
        if not ok or template is None:
            return None
        return StepSpec(
            template.name,
            language,
            str(path),
            body,
            header if needs_header_param(template) else None,
            phone,
            region,
            buttons,
        )

    def collect_spec(self, start_now: bool) -> CampaignSpec | None:
        name = self.value("name")
        problems = 0
        if error := check_name(name):
            self.field("f-name").set_error(error)
            problems += 1
        rate = self._parsed("f-rate", "rate", parse_rate)
        max_retries = self._parsed("f-retries", "max-retries", parse_retries)
        retry_delays = self._parsed("f-delays", "retry-delays", parse_delays)
        senders = self._parsed("f-senders", "senders", parse_senders)
        problems += sum(value is None for value in (rate, max_retries, retry_delays, senders))
        when = (self.value("start-at"), self.value("send-window"), self.value("deadline"))
        _, schedule_problems = schedule_from_text(*when, now=self.now())
        for problem in schedule_problems:
            self.field(FIELD_WIDGETS[problem.field]).set_error(problem.message)
        problems += len(schedule_problems)
        exclude = Path(self.value("exclude")).expanduser() if self.value("exclude") else None
        if exclude is not None and not exclude.is_file():
            self.field("f-exclude").set_error(f"no file at {exclude}")
            problems += 1
        steps = list(self.steps)
        if not steps or self._step_started():
            step = self.collect_step()
            if step is None:
                problems += 1
            else:
                steps.append(step)
        if problems or rate is None or max_retries is None or retry_delays is None or senders is None:
            return None
        return CampaignSpec(
            name,
            tuple(steps),
            rate=rate,
            max_retries=max_retries,
            retry_delays=retry_delays,
            start_now=start_now,
            senders=senders,
            start_at=when[0],
            send_window=when[1],
            deadline=when[2],
            exclude=exclude,
            endpoint=str(self.query_one("#endpoint", Select).value),
        )

    def _parsed(self, field_id: str, input_id: str, parse: Callable[[str], T]) -> T | None:
        """The input's value, or None after marking its field with what to fix."""
        try:
            return parse(self.value(input_id))
        except ValueError as error:
            self.field(field_id).set_error(str(error))
            return None

    def _step_started(self) -> bool:
        return self.template is not None or bool(self.value("contacts"))

    @work(group="setup", exclusive=True, exit_on_error=False)
    async def action_save(self, start_now: bool) -> None:
        """Validate everything, show the report, then create (and maybe start) the campaign."""
        if self.checked_draft is not None:
            await self._go_on_with_checked_draft(self.checked_draft, start_now)
            return
        created = await self._create(start_now)
        if created is None:
            return
        verb = "started" if start_now else "saved as a draft"
        self.notify(f"{created.name}: {fmt.count(created.total)} recipients, {verb}")
        # Leave from the app's queue: popping this screen cancels this very worker.
        self.app.call_later(self._leave, created.name if start_now else None)

    @work(group="setup", exclusive=True, exit_on_error=False)
    async def action_dry_run(self) -> None:
        """Save the campaign as a draft (once) and show what a run would do, before any send."""
        name = self.checked_draft
        if name is None:
            created = await self._create(False)
            if created is None:
                return
            name = self.checked_draft = created.name
        try:
            check = await self.backend.check_campaign(name)
        except WatuiError as error:
            self.query_one("#form-error", Static).update(f"✖ {escape(str(error))}")
            return
        panel = self.query_one("#check", Static)
        panel.update(escape("\n".join(["Dry run (saved as a draft):", *check.lines()])))
        self.query_one("#form", VerticalScroll).scroll_to_widget(panel, animate=False)

    async def _go_on_with_checked_draft(self, name: str, start_now: bool) -> None:
        if start_now:
            try:
                await self.backend.start(name)
            except WatuiError as error:
                self.query_one("#form-error", Static).update(f"✖ {escape(str(error))}")
                return
        self.app.call_later(self._leave, name if start_now else None)

    async def _create(self, start_now: bool) -> CampaignRow | None:
        """The campaign created from the form, or None with the problems marked."""
        form_error = self.query_one("#form-error", Static)
        form_error.update("")
        spec = self.collect_spec(start_now)
        if spec is None:
            form_error.update("Fix the fields marked ✖ above.")
            self._scroll_to_first_error()
            return None
        try:
            if self.report is None and self._step_started():
                last = spec.steps[-1]
                self.report = await self.backend.validate_contacts(
                    Path(last.contacts), last.phone_column, last.default_region
                )
                self.query_one("#report", Static).update(report_text(self.report))
            if self.report is not None and self.report.valid == 0:
                form_error.update("✖ The contacts file has no valid contact.")
                return None
            return await self.backend.create_campaign(spec)
        except WatuiError as error:
            unmarked = self._mark_problems(error, spec)
            form_error.update(f"✖ {'; '.join(unmarked)}" if unmarked else "Fix the fields marked ✖ above.")
            self._scroll_to_first_error()
            return None

    def _leave(self, monitor: str | None) -> None:
        self.app.pop_screen()
        if monitor is not None:
            # To the app itself: this screen is closing and no longer passes messages on.
            self.app.post_message(OpenMonitor(monitor))

    def _mark_problems(self, error: WatuiError, spec: CampaignSpec) -> list[str]:
        """Mark the field of each problem the backend found; return the ones no field shows
        (a step already added, a hidden field, or an error about no field)."""
        if isinstance(error, CampaignExists):
            problems = [Problem(Field.NAME, str(error))]
        elif isinstance(error, InvalidCampaign):
            problems = list(error.problems)
        elif isinstance(error, ContactsError) and error.field is not None:
            problems = [Problem(error.field, str(error), len(spec.steps))]
        else:
            return [str(error)]
        in_form = len(spec.steps) if self._step_started() else None
        unmarked = []
        for problem in problems:
            widget = FIELD_WIDGETS.get(problem.field)
            shown = widget is not None and self.field(widget).display
            if widget is not None and shown and problem.step in (None, in_form):
                self.field(widget).set_error(problem.message)
            else:
                unmarked.append(problem.message)
        return unmarked

    def _scroll_to_first_error(self) -> None:
        for field in self.query(FormField):
            if field.has_class("-invalid"):
                self.query_one("#form", VerticalScroll).scroll_to_widget(field, animate=False)
                break
