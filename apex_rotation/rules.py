"""Safe boolean rule expressions over named filters, e.g. ``(volume_spike OR oi_shift) AND NOT funding_hot``.

A user writes confirmation rules in the config, so they are parsed by a small recursive-descent parser
(never `eval`) into an AST that evaluates, prints back canonically and composes in Python with `&`, `|`
and `~` (like zipline's Filter composition)::

    expr := or
    or   := and ("OR" and)*
    and  := not ("AND" not)*
    not  := "NOT" not | atom
    atom := NAME | "(" expr ")"

Keywords are case-insensitive; names are ``[a-z_][a-z0-9_]*`` (written in any case, stored lower-case).
Evaluation is three-valued (Kleene): a filter is True, False or None (insufficient data); ``NOT None`` is
None, ``False AND None`` is False, ``True OR None`` is True, so missing data only matters where it could
change the answer.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

KEYWORDS = ("AND", "OR", "NOT")
NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_TOKEN_RE = re.compile(r"\s+|\(|\)|[A-Za-z_][A-Za-z0-9_]*")


class RuleError(ValueError):
    """A rule that cannot be used; when parsed from text the message ends with the text and a caret."""

    def __init__(self, message: str, text: str | None = None, column: int | None = None) -> None:
        self.message = message
        self.text = text
        self.column = column
        if text is not None and column is not None:
            message = f"{message}\n  {text}\n  {' ' * (column - 1)}^"
        super().__init__(message)


class Rule:
    """A boolean expression over filter names; subclasses are immutable and compare structurally."""

    __slots__ = ()

    def evaluate(self, values: Mapping[str, bool | None]) -> bool | None:
        """The Kleene value of the rule given each filter's True/False/None."""
        raise NotImplementedError

    def names(self) -> tuple[str, ...]:
        """The filter names the rule reads, in order of first appearance."""
        raise NotImplementedError

    def __and__(self, other: Rule) -> Rule:
        return And.of(self, other) if isinstance(other, Rule) else NotImplemented

    def __or__(self, other: Rule) -> Rule:
        return Or.of(self, other) if isinstance(other, Rule) else NotImplemented

    def __invert__(self) -> Rule:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError("a Rule has no truth value: combine rules with &, | and ~, not and/or/not")


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Name(Rule):
    """One filter, looked up by name at evaluation time."""

    name: str

    def __post_init__(self) -> None:
        if not NAME_RE.fullmatch(self.name) or self.name.upper() in KEYWORDS:
            raise RuleError(f"invalid filter name {self.name!r}: expected [a-z_][a-z0-9_]*, not a keyword")

    def evaluate(self, values: Mapping[str, bool | None]) -> bool | None:
        return values[self.name]

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Not(Rule):
    operand: Rule

    def evaluate(self, values: Mapping[str, bool | None]) -> bool | None:
        value = self.operand.evaluate(values)
        return None if value is None else not value

    def names(self) -> tuple[str, ...]:
        return self.operand.names()

    def __str__(self) -> str:
        inner = str(self.operand)
        return f"NOT {inner}" if isinstance(self.operand, Name | Not) else f"NOT ({inner})"


@dataclass(frozen=True)
class And(Rule):
    """Conjunction of two or more rules (nested ANDs are flattened, so printing round-trips)."""

    operands: tuple[Rule, ...]

    @classmethod
    def of(cls, *rules: Rule) -> Rule:
        flat: list[Rule] = []
        for rule in rules:
            flat.extend(rule.operands if isinstance(rule, And) else (rule,))
        return flat[0] if len(flat) == 1 else cls(tuple(flat))

    def evaluate(self, values: Mapping[str, bool | None]) -> bool | None:
        results = [op.evaluate(values) for op in self.operands]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True

    def names(self) -> tuple[str, ...]:
        return _unique([n for op in self.operands for n in op.names()])

    def __str__(self) -> str:
        return " AND ".join(f"({op})" if isinstance(op, Or) else str(op) for op in self.operands)


@dataclass(frozen=True)
class Or(Rule):
    """Disjunction of two or more rules (nested ORs are flattened)."""

    operands: tuple[Rule, ...]

    @classmethod
    def of(cls, *rules: Rule) -> Rule:
        flat: list[Rule] = []
        for rule in rules:
            flat.extend(rule.operands if isinstance(rule, Or) else (rule,))
        return flat[0] if len(flat) == 1 else cls(tuple(flat))

    def evaluate(self, values: Mapping[str, bool | None]) -> bool | None:
        results = [op.evaluate(values) for op in self.operands]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False

    def names(self) -> tuple[str, ...]:
        return _unique([n for op in self.operands for n in op.names()])

    def __str__(self) -> str:
        return " OR ".join(str(op) for op in self.operands)


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "NAME" or "END"
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        return "the end" if self.kind == "END" else f"'{self.text}'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise RuleError(f"unexpected character '{text[pos]}' at column {pos + 1}", text, pos + 1)
        word = match.group()
        if not word.isspace():
            kind = word if word in "()" else word.upper() if word.upper() in KEYWORDS else "NAME"
            tokens.append(_Token(kind, word, pos + 1))
        pos = match.end()
    tokens.append(_Token("END", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, known: Collection[str]) -> None:
        self.text = text
        self.known = {k.lower() for k in known}
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, message: str, token: _Token) -> RuleError:
        return RuleError(message, self.text, token.column)

    def parse(self) -> Rule:
        if self.peek().kind == "END":
            raise RuleError("empty rule: expected a filter name, e.g. 'volume_spike AND breakout'")
        rule = self.parse_or()
        token = self.peek()
        if token.kind == ")":
            raise self.fail(f"unexpected ')' at column {token.column}", token)
        if token.kind != "END":
            raise self.fail(f"expected AND or OR before {token.describe()} at column {token.column}", token)
        return rule

    def parse_or(self) -> Rule:
        operands = [self.parse_and()]
        while self.peek().kind == "OR":
            self.take()
            operands.append(self.parse_and())
        return Or.of(*operands)

    def parse_and(self) -> Rule:
        operands = [self.parse_not()]
        while self.peek().kind == "AND":
            self.take()
            operands.append(self.parse_not())
        return And.of(*operands)

    def parse_not(self) -> Rule:
        if self.peek().kind == "NOT":
            self.take()
            return Not(self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> Rule:
        token = self.peek()
        if token.kind == "NAME":
            self.take()
            return Name(self.check_name(token))
        if token.kind == "(":
            self.take()
            inner = self.parse_or()
            close = self.peek()
            if close.kind == ")":
                self.take()
                return inner
            if close.kind == "END":
                raise self.fail(f"unbalanced '(' at column {token.column}: no matching ')'", token)
            raise self.fail(
                f"expected AND, OR or ')' before {close.describe()} at column {close.column}", close
            )
        previous = self.tokens[self.pos - 1] if self.pos else None
        after = "" if previous is None else f" after {previous.kind if previous.kind != '(' else repr('(')}"
        raise self.fail(f"expected a filter name{after} at column {token.column}", token)

    def check_name(self, token: _Token) -> str:
        name = token.text.lower()
        if name not in self.known:
            close = difflib.get_close_matches(name, sorted(self.known), n=1)
            hint = f", did you mean '{close[0]}'?" if close else ""
            raise self.fail(
                f"unknown filter '{token.text}' at column {token.column}{hint} "
                f"(known: {', '.join(sorted(self.known))})",
                token,
            )
        return name


def parse(text: str, known_names: Collection[str]) -> Rule:
    """Parse a rule, checking every filter name against `known_names`; RuleError points at the problem."""
    return _Parser(text, known_names).parse()


def check_known(rule: Rule, known_names: Collection[str]) -> Rule:
    """Validate a rule composed in Python (no text, so no caret): every name must be a known filter."""
    unknown = [n for n in rule.names() if n not in set(known_names)]
    if unknown:
        raise RuleError(f"unknown filter '{unknown[0]}' (known: {', '.join(sorted(known_names))})")
    return rule
