"""The `entitlements.list` filter language (reference section 1.8), tokenized and parsed for real.

    filter     := expression?
    expression := sequence ("AND" sequence)*
    sequence   := factor factor*                 (an omitted connective means AND)
    factor     := term ("OR" term)*
    term       := "NOT" term | "(" expression ")" | comparison
    comparison := ATTRIBUTE ("=" | "!=" | ":") VALUE
    VALUE      := a double-quoted string (\\" and \\\\ escapes) | a bare word

Precedence follows Google's filtering convention (AIP-160): OR binds tighter than AND, so
`a AND b OR c` means `a AND (b OR c)`. `=` and `!=` compare single-valued attributes; `:` tests
membership of the repeated ones (`consumers.project`, `change_history.new_offer`) and is the only
operator they accept. `state` values are case-insensitive and may omit the `ENTITLEMENT_` prefix.

`parse_filter(text)` returns a `Filter` whose `matches(fields)` takes the attribute values of one
entitlement (`{canonical attribute: [values]}`); a mistake raises `FilterError` naming the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

# Accepted attribute spellings -> canonical attribute.
ATTRIBUTES: dict[str, str] = {
    "account": "account",
    "customer_billing_account": "customer_billing_account",
    "product_external_name": "product_external_name",
    "quote_external_name": "quote_external_name",
    "offer": "offer",
    "new_pending_offer": "new_pending_offer",
    "plan": "plan",
    "newPendingPlan": "new_pending_plan",
    "new_pending_plan": "new_pending_plan",
    "state": "state",
    "services": "services",
    "product": "product",
    "consumers.project": "consumers.project",
    "change_history.new_offer": "change_history.new_offer",
}
REPEATED = frozenset({"consumers.project", "change_history.new_offer"})

ENTITLEMENT_STATES = frozenset(
    {
        "ENTITLEMENT_STATE_UNSPECIFIED",
        "ENTITLEMENT_ACTIVATION_REQUESTED",
        "ENTITLEMENT_ACTIVE",
        "ENTITLEMENT_PENDING_CANCELLATION",
        "ENTITLEMENT_CANCELLED",
        "ENTITLEMENT_PENDING_PLAN_CHANGE",
        "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
        "ENTITLEMENT_SUSPENDED",
    }
)

Fields = Mapping[str, Sequence[str]]
Operator = Literal["=", "!=", ":"]
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_SPECIAL = frozenset('()"=!:')


class FilterError(ValueError):
    """A malformed filter; the message names the problem and where it is."""


@dataclass(frozen=True)
class Token:
    kind: Literal["(", ")", "AND", "OR", "NOT", "OP", "WORD", "STRING"]
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(Token("(" if ch == "(" else ")", ch, i))
            i += 1
        elif ch in "=:":
            tokens.append(Token("OP", ch, i))
            i += 1
        elif ch == "!":
            if text.startswith("!=", i):
                tokens.append(Token("OP", "!=", i))
                i += 2
            else:
                raise FilterError(f"Invalid filter: '!' at position {i} must be followed by '='")
        elif ch == '"':
            value, end = _quoted(text, i)
            tokens.append(Token("STRING", value, i))
            i = end
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            kind = word if word in _KEYWORDS else "WORD"
            tokens.append(Token(kind, word, start))  # type: ignore[arg-type]
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterError(f"Invalid filter: unterminated quoted string starting at position {start}")


class Filter:
    def matches(self, fields: Fields) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class MatchAll(Filter):
    def matches(self, fields: Fields) -> bool:
        return True


@dataclass(frozen=True)
class Not(Filter):
    operand: Filter

    def matches(self, fields: Fields) -> bool:
        return not self.operand.matches(fields)


@dataclass(frozen=True)
class And(Filter):
    operands: tuple[Filter, ...]

    def matches(self, fields: Fields) -> bool:
        return all(op.matches(fields) for op in self.operands)


@dataclass(frozen=True)
class Or(Filter):
    operands: tuple[Filter, ...]

    def matches(self, fields: Fields) -> bool:
        return any(op.matches(fields) for op in self.operands)


@dataclass(frozen=True)
class Comparison(Filter):
    attribute: str  # canonical
    op: Operator
    value: str

    def matches(self, fields: Fields) -> bool:
        values = fields.get(self.attribute, ())
        if self.attribute == "state":
            values = [v.upper() for v in values]
        if self.op == ":":
            return self.value in values
        found = self.value in values
        return found if self.op == "=" else not found


def normalize_state(value: str, pos: int) -> str:
    upper = value.upper()
    full = upper if upper.startswith("ENTITLEMENT_") else f"ENTITLEMENT_{upper}"
    if full not in ENTITLEMENT_STATES:
        raise FilterError(f"Invalid filter: unknown entitlement state {value!r} at position {pos}")
    return full


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Filter:
        if not self.tokens:
            return MatchAll()
        result = self.expression()
        extra = self.peek()
        if extra is not None:
            raise FilterError(f"Invalid filter: unexpected {extra.text!r} at position {extra.pos}")
        return result

    def expression(self) -> Filter:
        parts = [self.sequence()]
        while (tok := self.peek()) is not None and tok.kind == "AND":
            self.take()
            parts.append(self.sequence())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def sequence(self) -> Filter:
        parts = [self.factor()]
        while (tok := self.peek()) is not None and tok.kind in ("(", "NOT", "WORD", "STRING"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Filter:
        parts = [self.term()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Filter:
        tok = self.peek()
        if tok is None:
            raise FilterError("Invalid filter: expected a comparison at the end of the filter")
        if tok.kind == "NOT":
            self.take()
            return Not(self.term())
        if tok.kind == "(":
            self.take()
            inner = self.expression()
            close = self.peek()
            if close is None or close.kind != ")":
                where = f"position {close.pos}" if close else "the end of the filter"
                raise FilterError(f"Invalid filter: expected ')' at {where}")
            self.take()
            return inner
        return self.comparison()

    def comparison(self) -> Filter:
        tok = self.take()
        if tok.kind != "WORD":
            raise FilterError(
                f"Invalid filter: expected an attribute name at position {tok.pos}, "
                f"got {tok.text!r}"
            )
        attribute = ATTRIBUTES.get(tok.text)
        if attribute is None:
            raise FilterError(
                f"Invalid filter: unknown attribute {tok.text!r} at position {tok.pos}; "
                f"use one of {', '.join(sorted(ATTRIBUTES))}"
            )
        op_tok = self.peek()
        if op_tok is None or op_tok.kind != "OP":
            where = f"position {op_tok.pos}" if op_tok else "the end of the filter"
            raise FilterError(
                f"Invalid filter: expected '=', '!=' or ':' after {tok.text!r} at {where}"
            )
        self.take()
        op: Operator = "=" if op_tok.text == "=" else "!=" if op_tok.text == "!=" else ":"
        if attribute in REPEATED and op != ":":
            raise FilterError(
                f"Invalid filter: {tok.text!r} is a repeated field and supports only ':' "
                f"(position {op_tok.pos})"
            )
        if attribute not in REPEATED and op == ":":
            raise FilterError(
                f"Invalid filter: ':' applies only to repeated fields, not {tok.text!r} "
                f"(position {op_tok.pos})"
            )
        value_tok = self.peek()
        if value_tok is None or value_tok.kind not in ("WORD", "STRING"):
            where = f"position {value_tok.pos}" if value_tok else "the end of the filter"
            raise FilterError(f"Invalid filter: expected a value after {op_tok.text!r} at {where}")
        self.take()
        value = value_tok.text
        if attribute == "state":
            value = normalize_state(value, value_tok.pos)
        return Comparison(attribute, op, value)


def parse_filter(text: str) -> Filter:
    """Parse an `entitlements.list` filter; an empty one matches everything."""
    return _Parser(text).parse()
