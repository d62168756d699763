"""The one egress policy: where LiveWitness may send a request.

Every outbound URL (a webhook, a stream source, a time-stamping authority) is checked
here before anything connects: no control characters or whitespace in it, a scheme the
caller expects, a host, and every address the host resolves to globally routable. An
address that is not (loopback, private, shared 100.64.0.0/10, link-local with the cloud
metadata address 169.254.169.254, multicast, unspecified, reserved, IPv6 site-local
fec0::/10, ...) is refused unless ``LIVEWITNESS_EGRESS_ALLOW`` names it. IPv6 forms that
carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96``, 6to4 ``2002::/16``, NAT64
``64:ff9b::/96``) are judged by the IPv4 address inside as well.

The allow-list holds networks (``10.0.0.0/8``, ``127.0.0.1``, ``fd00::/8``), which allow
those addresses whatever name leads there, and host names (``tsa.internal``), which allow
that exact name whatever it resolves to. See docs/security.md, "Egress policy".

The check returns the addresses it judged; a client connects to those and resolves
nothing again (core/egress_http.py), so a name cannot point elsewhere in between (DNS
rebinding).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from core.errors import EgressRefusedError, LiveWitnessError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host and port -> the addresses it resolves to, in the resolver's order
Resolver = Callable[[str, int], list[str]]

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: What the deprecated ``allow_loopback_sources`` / ``allow_private_sources`` switches
#: add to the allow-list for stream sources (100.64.0.0/10 stays out: it holds metadata
#: addresses of some clouds).
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554}
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_-]+$")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, as the system resolver answers (also numeric
    forms like ``0x7f000001`` or ``2130706433``, as a socket would read them); OSError
    or UnicodeError when it cannot be resolved."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


def parse_allow_entry(entry: str) -> IPNetwork | str:
    """A network (an address is a /32 or /128) or a host name (lowercase); ValueError
    for anything else."""
    text = entry.strip().lower()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.rstrip(".")
    if not _HOST_NAME.match(name) or name.replace(".", "").isdigit():
        raise ValueError(f"not a network (CIDR), an address or a host name: {entry!r}")
    return name


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is no place for an outbound request, or None when it is globally
    routable. IPv6 forms that carry an IPv4 address are judged by it too."""
    inner = embedded_ipv4(address)
    if inner is not None:
        why = refusal_reason(inner)
        if why is not None:
            return f"{why} (as {inner} inside {address})"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address in SHARED_ADDRESS_SPACE:
        return "a shared address (100.64.0.0/10; cloud metadata lives there)"
    if isinstance(address, ipaddress.IPv6Address) and address in SITE_LOCAL:
        return "a site-local address (fec0::/10)"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 or NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_url_text(url: str, what: str) -> None:
    """Refuse control characters, whitespace and invisible format characters anywhere in
    a URL: they split headers (``\\r\\n``) or hide what is asked for."""
    for char in url:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise EgressRefusedError(
                f"{what} URL has a control or space character ({char!r}) in it"
            )


@dataclass(frozen=True)
class EgressTarget:
    """A URL that passed the policy: where to connect, and what was checked."""

    url: str
    scheme: str
    host: str  # as written in the URL, lowercase, without brackets
    port: int
    addresses: tuple[str, ...]  # the resolved addresses, all allowed, resolver's order


class EgressSettings(Protocol):
    """What the policy reads of core.settings.Settings (which validates its allow-list
    here, so this module does not import it)."""

    @property
    def egress_allow(self) -> list[str]: ...
    @property
    def allow_loopback_sources(self) -> bool: ...
    @property
    def allow_private_sources(self) -> bool: ...


class EgressPolicy:
    """Judges outbound URLs and hosts against the allow-list; ``resolver`` is the one
    seam for tests (a name that answers differently each time)."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver | None = None) -> None:
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in allow:
            parsed = parse_allow_entry(entry)
            if isinstance(parsed, str):
                self.hosts.add(parsed)
            else:
                self.networks.append(parsed)
        self.resolver = resolver or system_resolver

    @classmethod
    def for_settings(
        cls, settings: EgressSettings, *, sources: bool = False, resolver: Resolver | None = None
    ) -> EgressPolicy:
        """The policy of an installation; with ``sources``, the deprecated
        ``allow_loopback_sources`` / ``allow_private_sources`` switches add their networks
        (they always applied to stream sources only)."""
        allow = list(settings.egress_allow)
        if sources and settings.allow_loopback_sources:
            allow += LOOPBACK_NETWORKS
        if sources and settings.allow_private_sources:
            allow += PRIVATE_NETWORKS
        return cls(allow, resolver)

    def allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            for network in self.networks:
                if candidate.version == network.version and candidate in network:
                    return True
        return refusal_reason(address) is None

    def check_host(
        self,
        host: str,
        port: int,
        what: str = "host",
        unresolvable: type[LiveWitnessError] = EgressRefusedError,
    ) -> tuple[str, ...]:
        """Resolve ``host`` once and return its addresses if every one is allowed; a host
        named in the allow-list is allowed whatever it resolves to. A name that does not
        resolve raises ``unresolvable`` (a stream source: SourceUnreachableError)."""
        name = host.strip("[]").lower().rstrip(".")
        try:
            addresses = self.resolver(name, port)
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise unresolvable(f"cannot resolve the {what} {name!r}")
        if name in self.hosts:
            return tuple(addresses)
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise EgressRefusedError(f"{what} {name} resolved to {text!r}") from None
            if not self.allows_address(address):
                shown = name if name == str(address) else f"{name} ({address})"
                raise EgressRefusedError(
                    f"{what} {shown} is {refusal_reason(address)}: refused by the egress"
                    " policy (LIVEWITNESS_EGRESS_ALLOW can name it)"
                )
        return tuple(addresses)

    def check_url(
        self,
        url: str,
        schemes: Sequence[str] = ("http", "https"),
        what: str = "outbound",
        unresolvable: type[LiveWitnessError] = EgressRefusedError,
    ) -> EgressTarget:
        """Refuse ``url`` unless it is clean text, one of ``schemes``, names a host and
        every address of that host is allowed."""
        check_url_text(url, what)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefusedError(f"{what} URL is malformed ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            allowed = ", ".join(schemes)
            raise EgressRefusedError(f"{what} URL must be {allowed}, not {scheme or 'none'!r}")
        if not parts.hostname:
            raise EgressRefusedError(f"{what} URL has no host")
        if port is None:
            port = DEFAULT_PORTS.get(scheme, 0)
        addresses = self.check_host(parts.hostname, port, f"{what} host", unresolvable)
        return EgressTarget(url, scheme, parts.hostname.lower(), port, addresses)
