"""`conda-repo config`: read and write repo-cli-config.yaml."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlparse

import yaml

from taipan.cli import config as cfg
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.client import probe
from taipan.errors import InvalidInput, TaipanError

CONVERTERS = {"yaml": yaml.safe_load, "str": str, "int": int, "float": float}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="show or change the client configuration",
                              description="Show or change repo-cli-config.yaml (sites and their options).")
    p.add_argument("--type", choices=sorted(CONVERTERS), default="yaml",
                   help="how to read the values of --set (default: yaml, so 'true' is a boolean)")
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a value; dotted names make nested keys, e.g. sites.prod.url")
    p.add_argument("--set-site", metavar="DOMAIN",
                   help="add the server at DOMAIN (https, else http) as a site and make it the default")
    p.add_argument("--get", metavar="NAME", help="print one value")
    p.add_argument("--remove", action="append", default=[], metavar="NAME", help="remove a key")
    p.add_argument("--show", action="store_true", help="print the merged configuration")
    p.add_argument("--show-sources", action="store_true", help="print each configuration file")
    p.add_argument("-f", "--files", action="store_true", help="print the configuration file paths")
    p.add_argument("-u", "--user", action="store_true", default=True, help="change the user file (default)")
    p.add_argument("--system", action="store_true", help="change the system file instead")
    p.add_argument("--json", action="store_true", help="print --show / --get as JSON")
    p.set_defaults(func=run)


def _target(args: argparse.Namespace) -> Any:
    return cfg.system_config_file() if args.system else cfg.user_config_file()


def _set_site(ctx: Context, domain: str, data: dict[str, Any]) -> None:
    domain = domain.strip().rstrip("/")
    if "://" in domain:
        schemes = [domain.split("://", 1)[0]]
        domain = domain.split("://", 1)[1]
    else:
        schemes = ["https", "http"]
    domain = domain.removesuffix("/api")
    verify = cfg.ssl_verify(ctx.config, None, ctx.args.insecure)
    for scheme in schemes:
        url = f"{scheme}://{domain}/api"
        if probe(url, verify=verify):
            # Not set_key: a domain has dots, and they are part of the site's name here.
            sites = data["sites"] = data.get("sites") if isinstance(data.get("sites"), dict) else {}
            sites[domain] = {**(sites.get(domain) or {}), "url": url}
            data["default_site"] = domain
            ctx.out.success(f"Site {domain!r} set to {url} and made the default")
            return
        ctx.out.debug(f"no server answered at {url}")
    raise TaipanError(f"No Taipan server answered at {domain} over {' or '.join(schemes)}",
                      "Check the domain name (and port), and that the server is running",
                      code="connection_error")


def _apply_set(ctx: Context, data: dict[str, Any], name: str, raw: str) -> None:
    value = CONVERTERS[ctx.args.type](raw)
    if name.split(".", 1)[0] not in cfg.KNOWN_KEYS:
        ctx.out.warn(f"{name!r} is not a known configuration key")
    if name.endswith(".url") or name == "url":
        value = cfg.validate_url(value)
        if not urlparse(value).path.rstrip("/").endswith("/api"):
            ctx.out.warn(f"{value} does not end in /api; a site URL is the API base, "
                         f"e.g. {value.rstrip('/')}/api")
    known_sites = {**(ctx.config.get("sites") or {}), **(data.get("sites") or {})}
    if name == "default_site" and str(value) not in known_sites:
        ctx.out.warn(f"The site {value!r} is not configured yet; add it with "
                     f"`conda-repo config --set sites.{value}.url https://DOMAIN/api`")
    if name.startswith("sites.") and name.count(".") < 2:
        raise InvalidInput(f"{name!r} names a site, not one of its settings", f"Use {name}.url URL")
    cfg.set_key(data, name, value)
    ctx.out.info(f"{name} = {value!r}")


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.files:
        ctx.out.line(f"User Config: {cfg.user_config_file()}")
        ctx.out.line(f"System Config: {cfg.system_config_file()}")
        return ExitCode.OK
    if args.show_sources:
        found = [path for path in cfg.search_path() if path.is_file()]
        for path in found:
            ctx.out.line(f"==> {path} <==")
            ctx.out.yaml(cfg.read_file(path))
        if not found:
            ctx.out.info(f"No configuration file exists yet; `conda-repo config --set-site DOMAIN` "
                         f"creates {cfg.user_config_file()}")
        return ExitCode.OK
    if args.show:
        ctx.out.json(ctx.config) if args.json else ctx.out.yaml(ctx.config)
        return ExitCode.OK
    if args.get:
        value = cfg.get_key(ctx.config, args.get)
        if args.json:
            ctx.out.json(value)
        elif isinstance(value, dict | list):
            ctx.out.yaml(value)
        else:
            ctx.out.line(str(value))
        return ExitCode.OK
    if not (args.set or args.remove or args.set_site):
        raise InvalidInput("Nothing to do", "Give --set, --set-site, --remove, --get, --show, "
                           "--show-sources or --files (see `conda-repo config --help`)")
    path = _target(args)
    data = cfg.read_file(path)
    for name in args.remove:
        cfg.remove_key(data, name)
        ctx.out.info(f"removed {name}")
    for name, raw in args.set:
        _apply_set(ctx, data, name, raw)
    if args.set_site:
        _set_site(ctx, args.set_site, data)
    cfg.write_file(path, data)
    return ExitCode.OK
