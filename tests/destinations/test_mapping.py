"""The field-mapping language: paths, alternatives, literals, templates, escaping, bounds,
validation messages, and what a mapping reads (the message after the rules, the profile,
the group)."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from integrations.destinations import registry
from integrations.destinations.context import PlanContext, Profile, Rules
from integrations.destinations.mapping import (
    MAX_RENDERED,
    MAX_SOURCE,
    MISSING,
    Escape,
    FieldKind,
    MappedField,
    MappingError,
    MappingErrors,
    clean_mappings,
    compile_mapping,
    compile_mappings,
    evaluate,
)
from integrations.destinations.scope import MessageScope
from integrations.destinations.values import EventData


class DictScope:
    def __init__(self, **roots):
        self.roots = roots

    def root(self, name):
        return self.roots.get(name, MISSING)


MESSAGE = DictScope(
    userId="u1",
    anonymousId=None,
    traits={
        "email": "ada@acme.example",
        "firstName": "Ada",
        "empty": "",
        "score": 7,
        "active": True,
        "company": {"id": "acme", "name": "Acme"},
        "field.cancel.plan": "pro",
        'say "hi"': "hi",
        "tags": ["a", "b"],
    },
    properties={"items": [{"sku": "S-1"}, {"sku": "S-2"}]},
)


def value(source, kind=FieldKind.VALUE, scope=MESSAGE, escape=Escape.NONE):
    return evaluate(compile_mapping(source, kind), kind, scope, escape)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("userId", "u1"),
        ("traits.email", "ada@acme.example"),
        ("traits.company.id", "acme"),
        ("traits.score", 7),
        ("traits.active", True),
        ('traits["field.cancel.plan"]', "pro"),
        ('traits["say \\"hi\\""]', "hi"),
        ("properties.items[1].sku", "S-2"),
        ("properties.items[5].sku", MISSING),
        ("traits.nothing", MISSING),
        ("traits.email.deeper", MISSING),
        ("traits.company[0]", MISSING),
        ("nowhere.at.all", MISSING),
        ("anonymousId", MISSING),
        ("traits.empty || traits.firstName", "Ada"),
        ("anonymousId || userId", "u1"),
        ('traits.nothing || "free"', "free"),
        ("  traits.firstName  ", "Ada"),
        ('"constant"', "constant"),
    ],
)
def test_expressions(source, expected):
    assert value(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ traits.firstName }} <{{traits.email}}>", "Ada <ada@acme.example>"),
        ("score={{ traits.score }} active={{ traits.active }}", "score=7 active=true"),
        ("[{{ traits.nothing }}]", "[]"),
        ('{{ traits.nothing || "n/a" }}', "n/a"),
        ("{{ traits.tags }}", '["a","b"]'),
        ('{"a": {"b": "{{ userId }}"}}', '{"a": {"b": "u1"}}'),
        ("plain {{ userId }} }} text", "plain u1 }} text"),
    ],
)
def test_templates(source, expected):
    assert value(source) == expected


def test_a_path_for_a_text_field_is_written_as_text():
    assert value("traits.score", FieldKind.TEXT) == "7"
    assert value("traits.nothing", FieldKind.TEXT) is MISSING


def test_object_fields_take_objects_only():
    assert value("traits.company", FieldKind.OBJECT) == {"id": "acme", "name": "Acme"}
    assert value("traits.email", FieldKind.OBJECT) is MISSING
    with pytest.raises(MappingError, match="path to an object"):
        compile_mapping("{{ traits }}", FieldKind.OBJECT)
    with pytest.raises(MappingError, match="path to an object"):
        compile_mapping('traits || "x"', FieldKind.OBJECT)


def test_json_escaping_writes_each_substitution_as_a_json_value():
    scope = DictScope(traits={"name": 'Ada "the first"\n', "n": 3, "gone": None})
    rendered = value(
        '{"name": {{ traits.name }}, "n": {{ traits.n }}, "x": {{ traits.x }}}',
        scope=scope,
        escape=Escape.JSON,
    )
    assert rendered == '{"name": "Ada \\"the first\\"\\n", "n": 3, "x": null}'


def test_url_escaping_percent_encodes():
    scope = DictScope(userId="a b/c?d=&")
    assert value("https://x.example/u/{{ userId }}", scope=scope, escape=Escape.URL) == (
        "https://x.example/u/a%20b%2Fc%3Fd%3D%26"
    )


def test_key_value_fields():
    compiled = compile_mapping(
        {"X-User": "userId", "X-Plan": "plan-{{ traits.score }}", "X-None": "traits.x"},
        FieldKind.KEYVALUE,
    )
    assert evaluate(compiled, FieldKind.KEYVALUE, MESSAGE) == {"X-User": "u1", "X-Plan": "plan-7"}
    with pytest.raises(MappingError, match="object of names"):
        compile_mapping("userId", FieldKind.KEYVALUE)
    with pytest.raises(MappingError, match="X-Bad"):
        compile_mapping({"X-Bad": "traits..x"}, FieldKind.KEYVALUE)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("", "non-empty"),
        ("traits..email", "expected a key after '.'"),
        ("traits.", "expected a key after '.'"),
        ("traits.email ||", "expected a path or a quoted literal"),
        ("traits.email userId", "alternatives take ||"),
        ("$prof.traits.email", "unknown root '$prof'"),
        ("1abc", "expected a name"),
        ('"unterminated', "quoted literal"),
        ("traits[x]", 'expected [<position>] or ["<key>"]'),
        ('traits["x"', 'expected [<position>] or ["<key>"]'),
        ("{{ traits.email ", "'{{' without its '}}'"),
        ("{{ traits.email x }}", "alternatives take ||"),
        ("{{ }}", "expected a path or a quoted literal"),
        ("x" * (MAX_SOURCE + 1), "longer than"),
        ("{{a}}" * 51, "more than 50 substitutions"),
        (" || ".join(["a"] * 9), "more than 8 alternatives"),
        ("a" + ".b" * 17, "more than 16 keys"),
    ],
)
def test_bad_mappings_say_what_is_wrong(source, problem):
    with pytest.raises(MappingError, match=problem.replace("[", r"\[").replace("$", r"\$")):
        compile_mapping(source)


def test_a_template_rendering_too_much_fails_with_the_reason():
    big = DictScope(traits={"blob": "x" * (MAX_RENDERED // 2 + 1)})
    with pytest.raises(MappingError, match="more than 64,000 characters"):
        value("{{ traits.blob }}{{ traits.blob }}", scope=big)


def test_code_is_never_executed():
    scope = DictScope(traits={"__class__": "kept"})
    assert value("traits.__class__", scope=scope) == "kept"
    assert value("{{ traits.__class__.__init__ }}", scope=scope) == ""
    with pytest.raises(MappingError):
        compile_mapping("__import__('os')")


FIELDS = (
    MappedField("who", "Who", frozenset({"identify"}), preset="userId"),
    MappedField("attrs", "Attributes", frozenset({"identify"}), kind=FieldKind.OBJECT),
)


def test_clean_mappings_validates_every_field_and_drops_empty_ones():
    assert clean_mappings(FIELDS, {"who": "  traits.email ", "attrs": ""}) == {
        "who": "traits.email"
    }
    with pytest.raises(MappingErrors) as caught:
        clean_mappings(FIELDS, {"whom": "userId", "who": "traits..x", "attrs": "{{ x }}"}, "Vendor")
    assert caught.value.errors == {
        "whom": "unknown field for Vendor; its fields: who, attrs",
        "who": "expected a key after '.' at character 8 of 'traits..x'",
        "attrs": "takes a path to an object (e.g. traits), not a template or a literal",
    }
    with pytest.raises(MappingErrors, match="must be an object"):
        clean_mappings(FIELDS, ["who"])


def test_a_field_uses_its_preset_unless_mapped():
    field = FIELDS[0]
    assert field.value({}, MESSAGE) == "u1"
    mapped = compile_mappings(FIELDS, {"who": "traits.email", "gone": "userId"})
    assert set(mapped) == {"who"}
    assert field.value(mapped, MESSAGE) == "ada@acme.example"
    assert FIELDS[1].value({}, MESSAGE) is MISSING
    assert [str(p) for p in field.reads(mapped)] == ["traits.email"]
    assert field.describe()["preset_description"] == "userId"
    assert FIELDS[1].describe()["preset_description"] == "not sent unless mapped"


def test_a_bad_preset_is_refused_when_declared():
    with pytest.raises(MappingError):
        MappedField("x", "X", frozenset({"track"}), preset="traits..x")


def test_destinations_validate_mappings_with_a_validation_error():
    with pytest.raises(ValidationError) as caught:
        registry.get("customerio").clean_mappings({"nope": "userId"})
    assert "nope" in caught.value.message_dict


def test_every_declared_field_is_well_formed():
    for destination in registry.all_destinations():
        names = [f.name for f in destination.mapped_fields]
        assert len(names) == len(set(names)), destination.kind
        for spec in destination.mapped_fields:
            assert spec.calls <= destination.supported_types, (destination.kind, spec.name)
            assert spec.label


# -- what a mapping reads --------------------------------------------------------------

RULES = Rules.from_rules(
    [{"event": "Signed Up", "send_as": "signup"}],
    [{"name": "secret", "enabled": False}, {"name": "plan", "send_as": "tier"}],
)


def event(type_, **payload):
    return EventData(
        message_id="m1",
        type=type_,
        timestamp=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        payload={"type": type_, **payload},
        event=payload.get("event", ""),
        user_id=payload.get("userId", ""),
        group_id=payload.get("groupId", ""),
    )


CONTEXT = PlanContext(
    rules=RULES,
    profiles={"u1": Profile(traits={"email": "ada@acme.example", "secret": 1}, group_id="acme")},
    groups={"acme": {"name": "Acme", "plan": "pro"}, "globex": {"name": "Globex"}},
)


def test_the_scope_reads_the_message_after_the_rules():
    scope = MessageScope(
        event(
            "track",
            userId="u1",
            event="Signed Up",
            properties={"secret": 1, "plan": "pro"},
            context={"traits": {"secret": 2, "plan": "pro"}, "ip": "1.2.3.4"},
        ),
        CONTEXT,
    )
    assert value("properties.secret", scope=scope) is MISSING
    assert value("properties.plan", scope=scope) is MISSING
    assert value("properties.tier", scope=scope) == "pro"
    assert value("context.traits.secret", scope=scope) is MISSING
    assert value("context.traits.tier", scope=scope) == "pro"
    assert value("context.ip", scope=scope) == "1.2.3.4"
    assert value("event", scope=scope) == "signup"
    assert value("type", scope=scope) == "track"


def test_the_scope_reads_the_profile_and_the_group():
    scope = MessageScope(event("track", userId="u1", event="x"), CONTEXT)
    assert value("$profile.traits.email", scope=scope) == "ada@acme.example"
    assert value("$profile.traits.secret", scope=scope) is MISSING
    assert value("$profile.groupId", scope=scope) == "acme"
    assert value("$group.traits.tier", scope=scope) == "pro"
    in_context = MessageScope(
        event("identify", userId="u1", context={"groupId": "globex"}), CONTEXT
    )
    assert value("$group.traits.name", scope=in_context) == "Globex"
    group_call = MessageScope(
        event("group", userId="u1", groupId="globex", traits={"plan": "free"}), CONTEXT
    )
    assert value("$group.groupId", scope=group_call) == "globex"
    assert value("$group.traits", FieldKind.OBJECT, scope=group_call) == {
        "name": "Globex",
        "tier": "free",
    }
    anonymous = MessageScope(event("track", anonymousId="a1", event="x"), CONTEXT)
    assert value("$profile.traits.email", scope=anonymous) is MISSING
    assert value("$group.groupId", scope=anonymous) is MISSING
