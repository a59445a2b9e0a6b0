"""ikefilter-sitetable: labels from a CSV or TOML site table, through a real pipeline."""

from __future__ import annotations

import pytest
from ikefilter_sitetable import Lookup, SiteTable

from ikefilter import app
from ikefilter.config import ConfigError
from ikefilter.host import PluginError

CSV = """network,tunnel,owner,site
81.2.3.4,branch-07,stores,Malmo
81.2.0.0/16,partners,it-sec,
81.2.3.0/24,lab,research,Lund
2001:db8:7::/48,v6-branch,stores,Kista
"""
TOML = """
[[peer]]
network = "81.2.3.4"
tunnel = "branch-07"
owner = "stores"
site = "Malmo"
"""


def line(remote: str, initiator: str = "false", local: str = "203.0.113.1") -> str:
    return (f"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip={local}"
            f" remoteip={remote} initiator={initiator}")


def pipeline(tmp_path, table_name="sites.csv", table=CSV, options=""):
    (tmp_path / table_name).write_text(table)
    site = tmp_path / "site.toml"
    site.write_text(f'[plugins.sitetable]\npath = "{table_name}"\n{options}')
    return app.build_pipeline(config_path=str(site), plugins=[SiteTable()], entry_points=False)


def test_exact_address_then_longest_prefix(tmp_path):
    p = pipeline(tmp_path)
    out = p.process_lines([line("81.2.3.4"), line("81.2.3.9"), line("81.2.200.1"),
                           line("92.1.1.1"), line("2001:db8:7::5", local="2001:db8::1")])
    assert out[0].labels == {"tunnel": "branch-07", "owner": "stores", "site": "Malmo"}
    assert out[1].labels == {"tunnel": "lab", "owner": "research", "site": "Lund"}
    assert out[2].labels == {"tunnel": "partners", "owner": "it-sec"}
    assert out[3].labels is None
    assert out[4].labels["site"] == "Kista"


def test_the_remote_peer_follows_the_role_rule(tmp_path):
    p = pipeline(tmp_path)
    [initiated] = p.process_lines([line("81.2.3.4", initiator="true")])
    assert initiated.destination.ip == "81.2.3.4"
    assert initiated.labels["tunnel"] == "branch-07"


def test_a_toml_table(tmp_path):
    p = pipeline(tmp_path, "sites.toml", TOML)
    assert p.process_lines([line("81.2.3.4")])[0].labels["site"] == "Malmo"


def test_labels_survive_redaction(tmp_path, monkeypatch):
    monkeypatch.setenv("IKEFILTER_REDACT_KEY", "k")
    (tmp_path / "sites.csv").write_text(CSV)
    site = tmp_path / "site.toml"
    site.write_text('[redact]\nip = "hmac"\n[plugins.sitetable]\npath = "sites.csv"\n')
    p = app.build_pipeline(config_path=str(site), plugins=[SiteTable()], entry_points=False)
    [event] = p.process_lines([line("81.2.3.4")])
    assert event.source.ip is None and event.source.address
    assert event.labels["tunnel"] == "branch-07"


def test_inactive_without_its_table():
    plugin = SiteTable()
    p = app.build_pipeline(plugins=[plugin], entry_points=False)
    assert p.process_lines([line("81.2.3.4")])[0].labels is None


def test_config_and_table_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"site\.toml:3: plugins\.sitetable\.colour"):
        pipeline(tmp_path, options='colour = "red"\n')
    with pytest.raises(PluginError, match="'not-a-net' is not an address or network"):
        pipeline(tmp_path, table="network,site\nnot-a-net,x\n")
    with pytest.raises(PluginError, match="sitetable.*No such file"):
        site = tmp_path / "site.toml"
        site.write_text('[plugins.sitetable]\npath = "missing.csv"\n')
        app.build_pipeline(config_path=str(site), plugins=[SiteTable()], entry_points=False)


def test_lookup_is_cached():
    lookup = Lookup({"10.0.0.0/8": {"site": "x"}})
    assert lookup("10.1.2.3") == {"site": "x"} and lookup("11.0.0.1") is None
    assert set(lookup.cache) == {"10.1.2.3", "11.0.0.1"}


def test_registered_through_the_entry_point():
    from importlib import metadata

    eps = [ep for ep in metadata.entry_points(group="ikefilter") if ep.name == "sitetable"]
    if not eps:
        pytest.skip("ikefilter-sitetable is not installed")
    assert eps[0].value == "ikefilter_sitetable:plugin"
