"""Reading a /v1/batch body: each message parsed once with its length as written, and the
32 KB limit on a message as JSON.stringify measures it, whatever its text looks like."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.sources.body import MAX_EXPANSION, parse_json
from integrations.sources.http_api import MAX_MESSAGE_BYTES
from integrations.sources.segment_spec import compact_json
from tests.test_hostile_input import post, track

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)
spaces = st.sampled_from(["", " ", "\n  ", "\t"])


@given(
    st.lists(values, max_size=5), st.dictionaries(st.text(max_size=5), values, max_size=3), spaces
)
def test_a_batch_reads_as_json_loads_reads_it_with_each_message_s_length(items, others, space):
    """Written with any spacing, ``indent`` too: the value is json.loads' and each length
    is the message's own text."""
    texts = [json.dumps(item, indent=2 if space else None) for item in items]
    members = [f'"batch"{space}:{space}[{space}' + f"{space},{space}".join(texts) + f"{space}]"]
    members += [f"{json.dumps(key)}:{json.dumps(value)}" for key, value in others.items()]
    raw = (space + "{" + space + f",{space}".join(members) + space + "}" + space).encode()
    parsed = parse_json(raw, measure_batch=True)
    assert parsed.value == json.loads(raw)
    if "batch" not in others:
        assert parsed.batch_lengths == [len(text) for text in texts]
        assert parsed.batch_openings == [text.count("{") + text.count("[") for text in texts]


@pytest.mark.parametrize(
    "raw",
    [
        '{"batch": [1,]}',
        '{"batch": [1] x',
        '{"a": 1} {"b": 2}',
        "[1, 2]",
        '{"batch": 5}',
        '{"batch": [1], "batch": 2}',
    ],
)
def test_anything_else_reads_as_json_loads_reads_it(raw):
    try:
        expected = json.loads(raw)
    except ValueError as exc:
        with pytest.raises(Exception, match="not valid JSON") as refused:
            parse_json(raw.encode(), measure_batch=True)
        assert str(exc) in str(refused.value)
        return
    parsed = parse_json(raw.encode(), measure_batch=True)
    assert parsed.value == expected and parsed.batch_lengths is None


@pytest.mark.parametrize("text", ["1e15", "-1E15", "9e15", "1.5e15", '"\\u00e9"', '"😀"', "1e-7"])
def test_no_value_grows_more_than_the_bound_when_written_back(text):
    assert len(compact_json(json.loads(text))) <= MAX_EXPANSION * len(text)


def test_a_message_short_as_written_but_over_the_limit_once_written_back_is_refused(
    api_client, source
):
    """1,800 numbers written ``1e15`` (9 KB) are 34 KB as JSON.stringify writes them."""
    grown = track(messageId="grown", properties={"n": "PLACEHOLDER"})
    text = json.dumps(grown).replace('"PLACEHOLDER"', "[" + ",".join(["1e15"] * 1800) + "]")
    assert len(text) < MAX_MESSAGE_BYTES < len(compact_json(json.loads(text)))
    filler = json.dumps(track(messageId="filler", properties={"p": "x" * 30_000}))
    raw = '{"batch": [' + f"{json.dumps(track(messageId='fine'))}, {text}, {filler}" + "]}"
    response = post(api_client, "/v1/batch", raw, source.write_key)
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert [(e["index"], e["code"]) for e in response.json()["errors"]] == [
        (1, "message_too_large")
    ]
