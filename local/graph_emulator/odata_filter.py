"""A parser for the part of OData ``$filter`` the directory supports, compiled to a predicate.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")" | function | comparison
    function   := ("startswith" | "endswith") "(" property "," literal ")"
    comparison := property ("eq"|"ne"|"ge"|"le"|"gt"|"lt") literal
                | property "in" "(" literal ("," literal)* ")"
    literal    := 'string' (quote doubled inside) | true | false | null | number | datetime
    datetime   := 2024-05-01T10:00:00Z (unquoted, as Graph's audit logs take it)

Like the directory, string comparisons ignore case. Each resource says which properties accept which
operators; ``ne``, ``not``, ``endswith`` and ranges are advanced queries that need the
``ConsistencyLevel: eventual`` header, as on the real service.
"""

from __future__ import annotations

import operator as operator_module
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.graph_emulator.clock import parse_iso
from local.graph_emulator.errors import GraphError, JsonObject

Predicate = Callable[[JsonObject], bool]

BASIC = frozenset({"eq", "in", "startswith"})
ADVANCED = frozenset({"ne", "not", "endswith", "ge", "le", "gt", "lt"})
COMPARISONS = frozenset({"eq", "ne", "ge", "le", "gt", "lt"})
_TOKEN = re.compile(
    r"(?P<string>'(?:[^']|'')*')"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w/.]*)|(?P<punct>[(),])"
)


@dataclass(frozen=True)
class FilterRules:
    """Which properties of a resource can be filtered, and with which operators."""

    resource: str
    properties: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


class FilterSyntaxError(GraphError):
    """The filter text does not parse."""

    def __init__(self, detail: str, text: str) -> None:
        super().__init__(400, "BadRequest", f"Invalid filter clause: {detail} in '{text}'.")


def parse_filter(text: str, rules: FilterRules, *, advanced: bool = False) -> Predicate:
    """Compile ``text`` into a predicate over Graph JSON objects.

    Raises:
        GraphError: a syntax error (400 BadRequest) or an unsupported property/operator (400).
    """
    parser = _Parser(_tokenize(text), text, rules, advanced)
    predicate = parser.expression()
    parser.expect_end()
    return predicate


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TOKEN.match(text, position)
        if match is None:
            problem = "unterminated string" if text[position] == "'" else f"unexpected '{text[position]}'"
            raise FilterSyntaxError(f"{problem} at position {position}", text)
        kind = match.lastgroup or "punct"
        tokens.append(Token(kind, match.group(kind), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token], text: str, rules: FilterRules, advanced: bool) -> None:
        self.tokens = tokens
        self.text = text
        self.rules = rules
        self.advanced = advanced
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self, expected: str) -> Token:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError(f"expected {expected} at the end", self.text)
        self.index += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower() in words:
            self.index += 1
            return token.text.lower()
        return None

    def punct(self, char: str) -> None:
        token = self.next(f"'{char}'")
        if token.text != char:
            raise FilterSyntaxError(f"expected '{char}' at position {token.position}", self.text)

    def expect_end(self) -> None:
        token = self.peek()
        if token is not None:
            raise FilterSyntaxError(f"unexpected '{token.text}' at position {token.position}", self.text)

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda obj: any(term(obj) for term in terms))

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.keyword("and"):
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda obj: all(term(obj) for term in terms))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            self.require_advanced("not")
            inner = self.unary()
            return lambda obj: not inner(obj)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.next("a property, a function or '('")
        if token.text == "(":
            inner = self.expression()
            self.punct(")")
            return inner
        if token.kind != "name":
            raise FilterSyntaxError(f"unexpected '{token.text}' at position {token.position}", self.text)
        function = token.text.lower()
        if function in ("startswith", "endswith") and self.peek_is("("):
            return self.string_function(function)
        return self.comparison(token.text)

    def peek_is(self, char: str) -> bool:
        token = self.peek()
        return token is not None and token.text == char

    def string_function(self, function: str) -> Predicate:
        self.punct("(")
        prop = self.property_name()
        self.punct(",")
        value = self.literal()
        self.punct(")")
        self.check_operator(prop, function)
        if not isinstance(value, str):
            raise FilterSyntaxError(f"{function} needs a string literal", self.text)
        prefix = value.casefold()
        if function == "startswith":
            return lambda obj: isinstance(obj.get(prop), str) and obj[prop].casefold().startswith(prefix)
        return lambda obj: isinstance(obj.get(prop), str) and obj[prop].casefold().endswith(prefix)

    def comparison(self, prop: str) -> Predicate:
        operator_token = self.next("an operator")
        operator = operator_token.text.lower()
        if operator == "in":
            self.check_operator(prop, "in")
            values = self.literal_list()
            wanted = {_comparable(v) for v in values}
            return lambda obj: _comparable(obj.get(prop)) in wanted
        if operator not in COMPARISONS:
            raise FilterSyntaxError(f"unknown operator '{operator_token.text}'", self.text)
        self.check_operator(prop, operator)
        value = _comparable(self.literal())
        return _compare(prop, operator, value)

    def property_name(self) -> str:
        token = self.next("a property")
        if token.kind != "name":
            raise FilterSyntaxError(f"expected a property at position {token.position}", self.text)
        return token.text

    def literal_list(self) -> list[Any]:
        self.punct("(")
        values = [self.literal()]
        while self.peek_is(","):
            self.index += 1
            values.append(self.literal())
        self.punct(")")
        return values

    def literal(self) -> Any:
        token = self.next("a value")
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "datetime":
            try:
                return parse_iso(token.text)
            except ValueError:
                raise FilterSyntaxError(f"invalid date and time '{token.text}'", self.text) from None
        words = {"true": True, "false": False, "null": None}
        if token.kind == "name" and token.text.lower() in words:
            return words[token.text.lower()]
        raise FilterSyntaxError(
            f"expected a value at position {token.position}, found '{token.text}'", self.text
        )

    def check_operator(self, prop: str, operator: str) -> None:
        allowed = self.rules.properties.get(prop)
        if allowed is None or (operator not in allowed and operator not in ADVANCED):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{prop}' "
                f"of resource '{self.rules.resource}'.",
            )
        if operator in ADVANCED:
            self.require_advanced(operator)

    def require_advanced(self, operator: str) -> None:
        if not self.advanced:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Operator '{operator}' is an advanced query: send the 'ConsistencyLevel: eventual' header.",
            )


def _comparable(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "ge": operator_module.ge,
    "le": operator_module.le,
    "gt": operator_module.gt,
    "lt": operator_module.lt,
}


def _as_datetime(value: Any) -> datetime | None:
    """A stored ISO timestamp as a datetime, to compare with a datetime literal."""
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def _compare(prop: str, operator: str, value: Any) -> Predicate:
    def predicate(obj: JsonObject) -> bool:
        actual = _comparable(obj.get(prop))
        if isinstance(value, datetime):
            actual = _as_datetime(actual)
        if operator == "eq":
            return bool(actual == value)
        if operator == "ne":
            return bool(actual != value)
        if actual is None or value is None or type(actual) is not type(value):
            return False
        return bool(ORDERINGS[operator](actual, value))

    return predicate
