"""The Log Reference reader, on the shipped chapter and on small hand-made ones."""

from __future__ import annotations

import pytest
from conftest import REFERENCE

from ikefilter import refdoc

NBSP = "\u00a0"

FIELD_ORDER = (
    "Log Categories", "Log Message", "Default Log Severity", "Parameters", "Explanation",
    "Gateway Action", "Action Description", "Proposed Action",
)


def section(num: str, ident: int, title: str, **fields: str) -> str:
    """One section in the layout of the PDF text; ``fields`` override single-line defaults."""
    values = {
        "Log Categories": "IKE",
        "Log Message": f"Message {ident}.",
        "Default Log Severity": "Notice",
        "Parameters": "localip, remoteip",
        "Explanation": "Something happened.",
        "Gateway Action": "None",
        "Action Description": "None",
        "Proposed Action": "None",
    }
    values.update({k.replace("_", " "): v for k, v in fields.items()})
    out = [f"{num}.{NBSP}[ID: {ident}] {title}", ""]
    for name in FIELD_ORDER:
        if values[name] is None:
            continue
        out += [name, values[name]]
    return "\n".join(out) + "\n"


def chapter(*sections: str) -> str:
    return f"9.1.{NBSP}TEST\n\nThese log messages refer to the TEST category.\n\n" + "\n".join(
        sections
    )


def test_shipped_chapter_heading_and_intro():
    ch = refdoc.parse(REFERENCE.read_text("utf-8"))
    assert ch.number == "2.23"
    assert ch.title == "IKE"
    assert ch.intro == "These log messages refer to the IKE category."
    assert len(ch.sections) == 28
    assert [s.section for s in ch.sections] == [f"2.23.{i}" for i in range(1, 29)]


def test_shipped_section_fields_literally():
    by_id = {s.id: s for s in refdoc.parse(REFERENCE.read_text("utf-8")).sections}
    s = by_id[1061]
    assert s.section == "2.23.9"
    assert s.title == "Half open IKE SA limit exceeded"
    assert s.fields == {
        "categories": "IKE",
        "message": "Half open IKE SA limit exceeded.",
        "severity": "Notice",
        "parameters": "localip, localport, remoteip, remoteport, max",
        "explanation": "The system has too many ongoing IKE negotiations. The limit can be "
        "adjusted with IKESettings:MaxNegotiations.",
        "gateway_action": "Drop",
        "action_description": "The IKE negotiation will be dropped",
        "proposed_action": "None",
    }
    # A lone space under "Parameters" is an empty field.
    assert by_id[813].fields["parameters"] == ""
    assert by_id[1655].fields["parameters"] == ""


def test_field_spanning_several_lines_is_joined():
    text = chapter(
        section(
            "9.1.1", 4242, "Long one",
            Log_Message="First part of the message,\n  second part\nand the end.",
            Parameters="localip, localport,\nremoteip,\n remoteport",
            Explanation=f"Line one{NBSP}with a hard space.\n\nLine two after a blank line.",
        )
    )
    s = refdoc.parse(text).sections[0]
    assert s.fields["message"] == "First part of the message, second part and the end."
    assert s.fields["parameters"] == "localip, localport, remoteip, remoteport"
    assert refdoc.split_list(s.fields["parameters"]) == [
        "localip", "localport", "remoteip", "remoteport",
    ]
    assert s.fields["explanation"] == (
        "Line one with a hard space. Line two after a blank line."
    )


def test_empty_fields_lone_space_nbsp_or_nothing():
    text = chapter(
        section("9.1.1", 1, "Space", Parameters=" "),
        section("9.1.2", 2, "Hard space", Parameters=NBSP),
        section("9.1.3", 3, "Nothing", Parameters=""),
    )
    assert [s.fields["parameters"] for s in refdoc.parse(text).sections] == ["", "", ""]


def test_title_cut_short_is_kept_as_printed():
    text = chapter(section("9.1.1", 7, "A very long title that the PDF cut[...]",
                           Log_Message="A very long title that the PDF cut short."))
    s = refdoc.parse(text).sections[0]
    assert s.title == "A very long title that the PDF cut[...]"
    assert s.fields["message"] == "A very long title that the PDF cut short."


def test_heading_with_plain_space_and_no_trailing_dot():
    text = "9.1 TEST\n\n9.1.1 [ID:77] Plain\n\n" + "\n".join(
        f"{name}\nx" for name in FIELD_ORDER
    )
    ch = refdoc.parse(text)
    assert (ch.number, ch.title) == ("9.1", "TEST")
    assert (ch.sections[0].id, ch.sections[0].section, ch.sections[0].title) == (
        77, "9.1.1", "Plain",
    )


@pytest.mark.parametrize("missing", FIELD_ORDER)
def test_missing_field_is_an_error_naming_it(missing):
    text = chapter(section("9.1.1", 1, "Ok"), section("9.1.2", 55, "Bad", **{
        missing.replace(" ", "_"): None,
    }))
    with pytest.raises(refdoc.ReferenceError, match=rf"\[ID: 55\] lacks {missing}"):
        refdoc.parse(text)


def test_text_outside_any_field_is_an_error_naming_the_line():
    good = section("9.1.1", 8, "Stray")
    lines = good.split("\n")
    lines.insert(2, "a stray paragraph before the first field")
    text = chapter("\n".join(lines))
    # chapter() puts 4 lines before the section; the stray text is the section's 3rd line.
    with pytest.raises(refdoc.ReferenceError, match=r"line 7: text outside any field in \[ID: 8\]"):
        refdoc.parse(text)


def test_field_twice_is_an_error():
    text = chapter(section("9.1.1", 9, "Twice") + "Explanation\nagain\n")
    with pytest.raises(refdoc.ReferenceError, match=r"'Explanation' twice in \[ID: 9\]"):
        refdoc.parse(text)


def test_no_chapter_heading_is_an_error():
    with pytest.raises(refdoc.ReferenceError, match="no chapter heading"):
        refdoc.parse("just some text\nwithout any heading\n")


def test_reference_error_is_a_value_error():
    assert issubclass(refdoc.ReferenceError, ValueError)


def test_split_list():
    assert refdoc.split_list("IKE,IPSEC") == ["IKE", "IPSEC"]
    assert refdoc.split_list(" ip,  iface ,") == ["ip", "iface"]
    assert refdoc.split_list("") == []
    assert refdoc.split_list("  ") == []


def test_section_before_the_chapter_heading_is_an_error():
    with pytest.raises(refdoc.ReferenceError, match="line 1: section before the chapter heading"):
        refdoc.parse(section("9.1.1", 1, "Orphan"))
