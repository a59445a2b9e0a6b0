"""``ikefilter template``: every field of every document is mapped, with a type its value
satisfies, and nothing is left to dynamic mapping; the shipped file is the command's output."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import msgspec
import pytest
from test_ecs_fields import HOSTILE

from ikefilter import app, catalog, cli, ecs, generate, template
from ikefilter.config import loads

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "docs" / "elasticsearch" / "templates.json"
KEY_ENV = "IKEFILTER_TEST_TEMPLATE_KEY"
# Elasticsearch's long; its ip type refuses a zone index or padding.
_LONG = range(-(2 ** 63), 2 ** 63)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_the_shipped_file_is_what_the_command_prints(capsysbinary):
    assert cli.main(["template"]) == 0
    printed = capsysbinary.readouterr().out
    assert SHIPPED.read_bytes() == printed, "run: ikefilter template > " + str(
        SHIPPED.relative_to(ROOT))
    body = json.loads(printed)
    assert set(body) == {"component_templates", "index_templates"}
    (name, index), = body["index_templates"].items()
    assert name == "logs-clavister.log"
    assert index["index_patterns"] == ["logs-clavister.log-*"] and index["data_stream"] == {}
    assert set(body["component_templates"]) <= set(index["composed_of"])


def mappings() -> dict:
    """The properties of the index the data stream makes: its components merged."""
    props: dict = {}
    dynamic_templates = []
    for body in template.templates()["component_templates"].values():
        m = body["template"]["mappings"]
        props.update(m["properties"])
        dynamic_templates += m.get("dynamic_templates", [])
    return {"properties": props, "dynamic_templates": dynamic_templates,
            "dynamic": False}


def _fits(kind: str, value) -> bool:
    if kind in ("keyword", "constant_keyword", "match_only_text", "wildcard"):
        return isinstance(value, str)
    if kind == "long":
        return type(value) is int and value in _LONG
    if kind == "boolean":
        return type(value) is bool
    if kind == "ip":
        if not isinstance(value, str) or "%" in value or value != value.strip():
            return False
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
    if kind == "date":
        return isinstance(value, str) and _TIME.fullmatch(value) is not None
    if kind == "flattened":
        return isinstance(value, dict)
    if kind == "geo_point":
        return isinstance(value, dict) and set(value) == {"lat", "lon"}
    raise AssertionError(f"no rule for the mapping type {kind}")


def problems(doc: dict, mapping: dict, path: str = "") -> list[str]:
    """Where ``doc`` is not mapped explicitly, or holds a value its mapping refuses."""
    out = []
    props = mapping.get("properties", {})
    for key, value in doc.items():
        name = f"{path}{key}"
        field = props.get(key)
        if field is None:
            if mapping.get("dynamic") is True:
                matched = [t for d in MAPPINGS["dynamic_templates"] for t in d.values()
                           if re.fullmatch(t["path_match"].replace("*", ".*"), name)]
                if matched and all(_fits(matched[0]["mapping"]["type"], v)
                                   for v in (value if isinstance(value, list) else [value])):
                    continue
            out.append(f"{name}: not mapped")
            continue
        items = value if isinstance(value, list) else [value]
        if "properties" in field:
            for item in items:
                if not isinstance(item, dict):
                    out.append(f"{name}: {item!r} where an object is mapped")
                else:
                    out += problems(item, field, name + ".")
        elif field.get("type") == "object":
            out += problems(value, field, name + ".")
        else:
            out += [f"{name}: {item!r} is not a {field['type']}" for item in items
                    if not _fits(field["type"], item)]
    return out


MAPPINGS = mappings()

SITES = {
    "defaults": "",
    "tag, syslog dialect, no original": '[ikefilter]\nnon_clavister = "tag"\n'
                                        'severity_dialect = "syslog"\n',
    "zone, no identity users, namespace": '[time]\nzone = "Europe/Stockholm"\n'
                                          '[ecs]\nidentity_users = false\n'
                                          'data_stream_namespace = "prod"\n',
    **{f"redact ip={ip} identity={ident}": f'[redact]\nip = "{ip}"\nidentity = "{ident}"\n'
                                          f'key_env = "{KEY_ENV}"\n'
       for ip, ident in [("mask", "mask"), ("hmac", "hmac"), ("truncate", "keep"),
                         ("cryptopan", "hmac"), ("keep", "mask")]},
}


def corpus() -> list[str]:
    cat = catalog.load()
    lines = list(generate.lines(cat, 28 * len(generate.SHAPES) * 3))
    lines += list(generate.lines(cat, 28 * 40, seed=7, mix="wild"))
    return lines + HOSTILE


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return corpus()


@pytest.mark.parametrize("site", sorted(SITES))
def test_every_field_of_every_document_is_mapped_and_fits(site, lines, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a key for the template test")
    pipeline = app.build_pipeline(loads(SITES[site], "site.toml"), entry_points=False)
    outs = pipeline.process_lines(lines)
    docs = [json.loads(msgspec.json.encode(o)) for o in outs if type(o) is ecs.Event]
    assert len(docs) > len(lines) * 0.9
    found = {}
    for doc in docs:
        for why in problems(doc, MAPPINGS):
            found.setdefault(why.split(":")[0], why)
    assert found == {}
    # constant_keyword: one value per index; every document of a site says the same.
    streams = {json.dumps(d["data_stream"]) for d in docs if "data_stream" in d}
    assert len(streams) == 1
    namespace = "prod" if "namespace" in site else "default"
    assert json.loads(streams.pop()) == {"type": "logs", "dataset": "clavister.log",
                                          "namespace": namespace}
    # The new fields are there, in some documents at least.
    for field in ("event.ingested", "network.direction", "log.syslog.facility.name"):
        head, _, leaf = field.rpartition(".")
        assert any(_get(d, head) and leaf in _get(d, head) for d in docs), field


def _get(doc: dict, dotted: str):
    for part in dotted.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def test_enrichment_and_labels_are_mapped():
    doc = {"source": {"ip": "81.2.3.4", "geo": {"country_iso_code": "SE",
                                                 "location": {"lat": 59.3, "lon": 18.1}},
                      "as": {"number": 3301, "organization": {"name": "Telia"}}},
           "labels": {"owner": "partner-a"}}
    assert problems(doc, MAPPINGS) == []
    assert problems({"labels": {"n": 5}, "source": {"geo": {"colour": "red"}}}, MAPPINGS) == [
        "labels.n: not mapped", "source.geo.colour: not mapped"]


class _Host(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    uptime: int | None = None


class _Wider(ecs.Event):
    host: _Host | None = None


class _Wrong(ecs.Event):
    colour: str | None = None


def test_a_field_added_to_the_structs_is_mapped_by_its_ecs_type():
    props = template._properties(msgspec.inspect.type_info(_Wider), "", template.ecs_fields())
    assert props["host"] == {"properties": {"name": {"type": "keyword", "ignore_above": 1024},
                                            "uptime": {"type": "long"}}}
    with pytest.raises(template.TemplateError, match="colour is not an ECS field"):
        template._properties(msgspec.inspect.type_info(_Wrong), "", template.ecs_fields())


def test_a_value_its_mapping_refuses_is_found():
    doc = {"clavister": {"ip_pool": {"address": "3f1c0a9e"}, "ike": {"version": "2"}},
           "@timestamp": "2026-11-26T10:00:00Z", "related": {"ip": ["fe80::1%eth0"]}}
    assert sorted(problems(doc, MAPPINGS)) == [
        "@timestamp: '2026-11-26T10:00:00Z' is not a date",
        "clavister.ike.version: '2' is not a long",
        "clavister.ip_pool.address: '3f1c0a9e' is not a ip",
        "related.ip: 'fe80::1%eth0' is not a ip",
    ]


def test_the_curl_line_in_the_docs_loads_every_template(tmp_path):
    """The line docs/integrations.md gives, run by bash against a stand-in for the cluster's
    template API on loopback: each template PUT once, components first, as printed."""
    import http.server
    import shutil
    import subprocess
    import threading

    if not (shutil.which("jq") and shutil.which("curl")):
        pytest.skip("needs jq and curl")
    text = (ROOT / "docs" / "integrations.md").read_text("utf-8")
    (line,) = re.findall(r"^jq -r .*templates\.json .*curl .*$", text, re.M)
    puts = []

    class Api(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            puts.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"acknowledged":true}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"PATH": "/usr/bin:/bin", "ES": f"http://127.0.0.1:{server.server_port}"}
        subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, check=True, timeout=60,
                       capture_output=True)
    finally:
        server.shutdown()
    shipped = json.loads(SHIPPED.read_text())
    expected = [(f"/_component_template/{name}", body)
                for name, body in shipped["component_templates"].items()]
    expected += [(f"/_index_template/{name}", body)
                 for name, body in shipped["index_templates"].items()]
    assert [(path, body) for path, _, body in puts] == expected
    assert {kind for _, kind, _ in puts} == {"application/json"}
