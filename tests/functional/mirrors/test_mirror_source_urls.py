"""Source and proxy URLs: a token in the source URL or a password in the proxy URL never appears in
the mirror JSON (which every reader of the channel can see); a subdir URL is refused as a source."""

from __future__ import annotations

import httpx

from conftest import api, unique


def test_source_token_and_proxy_password_are_redacted(cli, mirror_server, upstream) -> None:
    channel = unique("secrets")
    cli.run("channel", "--create", channel)
    source = upstream.url + "/t/sekrit-token-42/"
    cli.run("mirror", "--create", "s", "--channel", channel, "--source", source,
            "--proxy", "http://user:hunter2pass@127.0.0.1:9")
    with api(mirror_server) as c:
        texts = [c.get(f"/channels/{channel}/mirrors").text, c.get(f"/channels/{channel}/mirrors/s").text,
                 c.get("/mirrors").text, c.get(f"/channels/{channel}/history").text]
    with httpx.Client(base_url=mirror_server.api) as anon:
        texts.append(anon.get(f"/channels/{channel}/mirrors").text)
    for text in texts:
        i = text.find("sekrit")
        assert "sekrit-token-42" not in text and "hunter2pass" not in text, text[max(0, i - 300):i + 50]
    assert "/t/***" in texts[0] and "***:***@" in texts[0]
    shown = cli.run("mirror", "--show", "s", "--channel", channel).stdout
    assert "sekrit" not in shown and "hunter2" not in shown


def test_a_subdir_url_as_source_is_refused_with_the_root_as_hint(cli, upstream) -> None:
    channel = unique("subdirurl")
    cli.run("channel", "--create", channel)
    for wrong in (upstream.url + "/linux-64", upstream.url + "/noarch/repodata.json"):
        out = cli.run("mirror", "--create", "w", "--channel", channel, "--source", wrong, rc=None)
        assert out.returncode != 0 and "not at its root" in out.stderr and f"'{upstream.url}'" in out.stderr
    out = cli.run("mirror", "--list", channel)
    assert " w " not in out.stdout
