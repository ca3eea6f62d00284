"""The rule file: rules over scores, routes, receivers, inhibition (one YAML, one schema).

Everything is validated before the alerter starts (and by ``spanline alerts lint``):
unknown keys, bad durations, a baseline without its guards and unknown template fields
are errors that name the rule and the key, because a rule that silently never fires is
worse than a service that refuses to start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from spanline.alerter.durations import parse_duration
from spanline.core.yaml_file import YamlFileError, read_yaml_mapping

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.yaml")

Duration = Annotated[float, BeforeValidator(parse_duration)]
Aggregate = Literal["mean", "sum", "count", "ratio", "min", "max", "p50", "p90", "p95", "p99"]
QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
Op = Literal[">", ">=", "<", "<=", "==", "!="]
NoData = Literal["keep_state", "ok", "alerting"]

TEMPLATE_FIELDS = frozenset(
    {"rule", "value", "threshold", "baseline", "change_pct", "samples", "window", "aggregate", "score"}
)
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_.]*$"


class RulesError(Exception):
    """The rule file is invalid; one line per problem, naming the rule and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def compare(op: str, left: float, right: float) -> bool:
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == "==":
        return left == right
    return left != right


class Threshold(_Model):
    op: Op
    value: float


class RatioOf(_Model):
    """`ratio` = weighted share of samples whose value satisfies this comparison."""

    op: Op = ">"
    value: float = 0.0


class Change(_Model):
    """Change versus a baseline. The guards are mandatory: without them a baseline of 0.01
    turns one expensive call into a 10,000% spike page."""

    direction: Literal["increase", "decrease", "either"] = "increase"
    pct: float = Field(gt=0)
    min_abs_delta: float = Field(ge=0)
    min_baseline: float = Field(gt=0)
    baseline: Literal["offset", "hourly_mean"] = "offset"
    offset: Duration = 7 * 86400.0
    fallback_offsets: list[Duration] = Field(default_factory=lambda: [86400.0, 3600.0])
    lookback: Duration = 7 * 86400.0
    bucket: Duration = 3600.0

    @model_validator(mode="before")
    @classmethod
    def _guards_present(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [k for k in ("min_baseline", "min_abs_delta", "pct") if k not in data]
            if missing:
                raise ValueError(
                    f"a baseline comparison needs {', '.join(missing)} "
                    "(a tiny baseline must not turn into a huge relative change)"
                )
        return data

    @model_validator(mode="after")
    def _sizes(self) -> Change:
        if self.bucket <= 0:
            raise ValueError("bucket must be positive")
        if self.offset <= 0 or self.lookback <= 0:
            raise ValueError("offset and lookback must be positive")
        return self

    @property
    def horizon_s(self) -> float:
        """How far back the coarse buckets must reach."""
        return max(self.offset, self.lookback, *(self.fallback_offsets or [0.0]))


class Defaults(_Model):
    eval_interval: Duration = 30.0
    for_: Duration = Field(default=120.0, alias="for")
    keep_firing_for: Duration = 300.0
    no_data: NoData = "keep_state"
    min_samples: int = Field(default=20, ge=1)
    allowed_lateness: Duration = 120.0
    group_by: list[Annotated[str, Field(pattern=_LABEL_NAME)]] = Field(default_factory=lambda: ["project"])
    labels: dict[str, str] = Field(default_factory=lambda: {"severity": "warning"})

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=120)
    score: list[str] = Field(min_length=1, description="score name(s); '*' matches any")
    evaluator_kind: str | None = None
    pass_labels: list[str] | None = None
    aggregate: Aggregate
    ratio: RatioOf | None = None
    window: Duration
    bucket: Duration | None = None
    threshold: Threshold | None = None
    change: Change | None = None
    for_: Duration | None = Field(default=None, alias="for")
    keep_firing_for: Duration | None = None
    no_data: NoData | None = None
    min_samples: int | None = Field(default=None, ge=1)
    allowed_lateness: Duration | None = None
    group_by: list[Annotated[str, Field(pattern=_LABEL_NAME)]] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("score", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.threshold is None) == (self.change is None):
            raise ValueError("exactly one of 'threshold' or 'change' is required")
        if self.window <= 0:
            raise ValueError("window must be positive")
        if self.ratio is not None and self.aggregate != "ratio":
            raise ValueError("'ratio' is only valid with aggregate: ratio")
        if self.bucket is not None and not 0 < self.bucket <= self.window:
            raise ValueError("bucket must be positive and no longer than the window")
        if (
            self.change is not None
            and self.change.baseline == "hourly_mean"
            and self.change.lookback <= self.window
        ):
            raise ValueError("change.lookback must be longer than the window")
        for key, text in self.annotations.items():
            for name in _TEMPLATE.findall(text):
                if name not in TEMPLATE_FIELDS and not name.startswith("labels."):
                    raise ValueError(
                        f"annotations.{key}: unknown template field {{{{ {name} }}}}; "
                        f"use one of {', '.join(sorted(TEMPLATE_FIELDS))} or labels.<name>"
                    )
        return self


class Matchers(_Model):
    """Equality matchers (``name: value``) plus regex ones (``name=~: regex``)."""

    equal: dict[str, str] = Field(default_factory=dict)
    regex: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and not ({"equal", "regex"} & set(data)):
            equal = {k: str(v) for k, v in data.items() if not str(k).endswith("=~")}
            regex = {str(k)[:-2]: str(v) for k, v in data.items() if str(k).endswith("=~")}
            return {"equal": equal, "regex": regex}
        return data

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matchers:
        for name, pattern in self.regex.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"matcher {name}=~ is not a valid regex: {exc}") from None
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        for name, value in self.equal.items():
            if labels.get(name, "") != value:
                return False
        for name, pattern in self.regex.items():
            if re.fullmatch(pattern, labels.get(name, "")) is None:
                return False
        return True


class Route(_Model):
    receiver: str | None = None
    matchers: Matchers = Field(default_factory=Matchers)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    routes: list[Route] = Field(default_factory=list)


class InhibitRule(_Model):
    source_matchers: Matchers
    target_matchers: Matchers
    equal: list[str] = Field(default_factory=list)


class Secret(_Model):
    """A secret inline (``value``) or by environment variable name (``env``)."""

    value: SecretStr | None = None
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, data: Any) -> Any:
        return {"value": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one(self) -> Secret:
        if (self.value is None) == (self.env is None):
            raise ValueError("give exactly one of 'value' or 'env'")
        return self

    def resolve(self, environ: dict[str, str]) -> str:
        if self.value is not None:
            return self.value.get_secret_value()
        assert self.env is not None
        found = environ.get(self.env)
        if not found:
            raise RulesError(f"environment variable {self.env} is not set")
        return found


class SlackConfig(_Model):
    mode: Literal["webhook", "bot"] = "webhook"
    webhook_url: Secret | None = None
    token: Secret | None = None
    channel: str | None = None
    base_url: str | None = Field(default=None, description="Slack Web API base (bot mode), for tests/proxies")
    send_resolved: bool = True

    @model_validator(mode="after")
    def _mode_fields(self) -> SlackConfig:
        if self.mode == "webhook" and self.webhook_url is None:
            raise ValueError("mode webhook needs webhook_url (inline or {env: NAME})")
        if self.mode == "bot" and (self.token is None or not self.channel):
            raise ValueError("mode bot needs token and channel")
        return self


PdSeverity = Literal["critical", "error", "warning", "info"]


def _pd_severity() -> dict[str, PdSeverity]:
    return {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


class PagerDutyConfig(_Model):
    routing_key: Secret
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = "spanline"
    send_resolved: bool = True
    severity: dict[str, PdSeverity] = Field(default_factory=_pd_severity)


class Receiver(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    slack: list[SlackConfig] = Field(default_factory=list)
    pagerduty: list[PagerDutyConfig] = Field(default_factory=list)
    console: bool = False


class RulesFile(_Model):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    label_sources: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    route: Route | None = None
    receivers: list[Receiver] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> RulesFile:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate rule names: {', '.join(dupes)}")
        known = {r.name for r in self.receivers}
        rnames = [r.name for r in self.receivers]
        if len(known) != len(rnames):
            raise ValueError("duplicate receiver names")

        def walk(route: Route, path: str) -> None:
            if route.receiver is not None and route.receiver not in known:
                raise ValueError(f"{path}.receiver: unknown receiver {route.receiver!r}")
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]")

        if self.route is not None:
            walk(self.route, "route")
            if self.route.receiver is None and self.receivers:
                raise ValueError("route.receiver: the top-level route needs a receiver")
        for rule in self.rules:
            if rule.window < self.defaults.eval_interval:
                raise ValueError(
                    f"rule {rule.name!r}: window ({rule.window:g}s) is shorter than "
                    f"defaults.eval_interval ({self.defaults.eval_interval:g}s)"
                )
        return self


def _rule_label(data: Any, index: int) -> str:
    try:
        name = data["rules"][index]["name"]
        return f"rule {name!r}"
    except (KeyError, IndexError, TypeError):
        return f"rule #{index + 1}"


def format_errors(exc: ValidationError, data: Any, source: str) -> str:
    """One line per problem: which rule (by name), which key, what is wrong; never a value."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            where = _rule_label(data, loc[1]) + ": "
            loc = loc[2:]
        key = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "<rule>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}{key}: {msg}")
    return f"invalid rule file {source}:\n" + "\n".join(dict.fromkeys(lines))


def parse_rules(data: dict[str, Any], source: str = "<rules>") -> RulesFile:
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(format_errors(exc, data, source)) from None


def load_rules(path: str | Path | None) -> RulesFile:
    """The rule file at `path`, or the shipped defaults when `path` is None."""
    target = Path(path) if path else DEFAULT_RULES_FILE
    try:
        data = read_yaml_mapping(target, "rule file")
    except YamlFileError as exc:
        raise RulesError(str(exc)) from None
    return parse_rules(data, str(target))


def render_template(text: str, fields: dict[str, str], labels: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("labels."):
            return labels.get(name[len("labels.") :], "")
        return fields.get(name, "")

    return _TEMPLATE.sub(sub, text)
