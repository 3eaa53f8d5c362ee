"""A provider's way out: forward proxies (CONNECT and absolute form, with credentials,
from the provider or the environment, NO_PROXY), its own CA, and client certificates.

Real servers on loopback: a TLS upstream whose certificate comes from a CA the test
makes (asking for a client certificate when told to), and a small forward proxy that
tunnels ``CONNECT`` and forwards absolute-form requests, demanding ``Proxy-Authorization``
when it has credentials and recording what it was asked. Each transport kind is driven
through ``default_transport``, as the daemon builds it; one test runs ``fkllm serve``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fkllmproxy.config import load_config
from fkllmproxy.config.redact import redacted, secret_values
from fkllmproxy.config.schema import ProviderConfig
from fkllmproxy.errors import ConfigError
from fkllmproxy.providers.exchange import UpstreamRequest
from fkllmproxy.providers.http import default_transport
from tests.conftest import RunningDaemon

WAIT = 20.0
TIMEOUTS = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=10.0).as_dict()
KINDS = ["h1", "httpx"]
ANSWER = {
    "id": "chatcmpl-egress",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "through"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


# --- certificates ---------------------------------------------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of these

    @classmethod
    def make(cls, directory: Path) -> Pki:
        now = datetime.datetime.now(datetime.UTC)

        def ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            return key, cert

        def leaf(
            issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str, server: bool
        ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(issuer[1].subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
                    critical=False,
                )
            )
            if server:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    ),
                    critical=False,
                )
            return key, builder.sign(issuer[0], hashes.SHA256())

        root = ca("fkllm test CA")
        server = leaf(root, "upstream.test", server=True)
        client = leaf(root, "fkllm-client", server=False)
        _, other = ca("some other CA")
        files = {}
        for name, data in {
            "ca.pem": root[1].public_bytes(serialization.Encoding.PEM),
            "other-ca.pem": other.public_bytes(serialization.Encoding.PEM),
            "server.pem": server[1].public_bytes(serialization.Encoding.PEM),
            "server.key": _pem(server[0]),
            "client.pem": client[1].public_bytes(serialization.Encoding.PEM),
            "client.key": _pem(client[0]),
        }.items():
            files[name] = directory / name
            files[name].write_bytes(data)
        return cls(
            ca=files["ca.pem"],
            server_cert=files["server.pem"],
            server_key=files["server.key"],
            client_cert=files["client.pem"],
            client_key=files["client.key"],
            other_ca=files["other-ca.pem"],
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


# --- servers ----------------------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> tuple[list[bytes], dict[bytes, bytes]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].split(b" "), headers


@dataclass
class Upstream:
    """An OpenAI-shaped answer over TLS (or plain http), naming the client's certificate."""

    server: asyncio.Server
    url: str
    clients: list[str] = field(default_factory=list)


async def start_upstream(pki: Pki | None, *, require_client_cert: bool = False) -> Upstream:
    context = None
    if pki is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(pki.ca)
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, headers = await _read_head(reader)
                await reader.readexactly(int(headers.get(b"content-length", b"0")))
                peer = writer.get_extra_info("peercert")
                seen.append(dict(x[0] for x in peer["subject"])["commonName"] if peer else "")
                body = json.dumps(ANSWER).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if pki is not None else "http"
    return Upstream(server, f"{scheme}://127.0.0.1:{port}", seen)


@dataclass
class ForwardProxy:
    """CONNECT tunnels and absolute-form forwarding; records (method, target, credentials)."""

    credentials: str | None = None  # "user:password" the proxy demands, if any
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    def url(self, credentials: str | None = None) -> str:
        user = f"{credentials}@" if credentials else ""
        return f"http://{user}127.0.0.1:{self.port}"

    async def start(self) -> ForwardProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (method, target, _), headers = await _read_head(reader)
            auth = headers.get(b"proxy-authorization")
            given = base64.b64decode(auth.split()[1]).decode() if auth else None
            self.asked.append((method.decode(), target.decode(), given))
            if self.credentials is not None and given != self.credentials:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            origin = httpx.URL(target.decode())
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            up_reader, up_writer = await asyncio.open_connection(origin.host, origin.port)
            lines = [b"%s %s HTTP/1.1" % (method, origin.raw_path)]
            lines += [
                name + b": " + value
                for name, value in headers.items()
                if name != b"proxy-authorization"
            ]
            up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await asyncio.gather(_pipe(up_reader, writer), _pipe(reader, up_writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    running = await ForwardProxy(credentials="fk:s3cret pass").start()
    yield running
    assert running.server is not None
    running.server.close()


@pytest.fixture
async def tls_upstream(pki: Pki) -> AsyncIterator[Upstream]:
    up = await start_upstream(pki)
    yield up
    up.server.close()


def provider(**fields: Any) -> ProviderConfig:
    return ProviderConfig(name="up", type="openai", **fields)


async def call(kind: str, config: ProviderConfig, url: str, environ: dict[str, str]) -> bytes:
    """One POST through the transport ``kind`` the daemon would build for ``config``."""
    transport = default_transport(kind, environ)(config)
    try:
        request = UpstreamRequest.of(
            "POST",
            url + "/v1/chat/completions",
            content=b"{}",
            headers={"content-type": "application/json", "host": httpx.URL(url).netloc.decode()},
            timeouts=TIMEOUTS,
        )
        response = await asyncio.wait_for(transport.handle_async_request(request), WAIT)
        return await asyncio.wait_for(response.aread(), WAIT)
    finally:
        await transport.aclose()


# --- TLS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
class TestTls:
    async def test_ca_file_trusts_the_providers_ca(
        self, kind: str, pki: Pki, tls_upstream: Upstream
    ) -> None:
        body = await call(kind, provider(ca_file=str(pki.ca)), tls_upstream.url, {})
        assert json.loads(body)["id"] == "chatcmpl-egress"

    async def test_without_it_the_certificate_is_refused(
        self, kind: str, pki: Pki, tls_upstream: Upstream
    ) -> None:
        with pytest.raises(httpx.ConnectError):
            await call(kind, provider(ca_file=str(pki.other_ca)), tls_upstream.url, {})
        assert tls_upstream.clients == []

    async def test_ssl_cert_file_from_the_env_file_is_honoured(
        self, kind: str, pki: Pki, tls_upstream: Upstream
    ) -> None:
        """SSL_CERT_FILE set in the env file (not the process) still picks the trust store."""
        body = await call(kind, provider(), tls_upstream.url, {"SSL_CERT_FILE": str(pki.ca)})
        assert json.loads(body)["object"] == "chat.completion"

    async def test_a_client_certificate_for_mutual_tls(self, kind: str, pki: Pki) -> None:
        up = await start_upstream(pki, require_client_cert=True)
        try:
            with_cert = provider(
                ca_file=str(pki.ca),
                client_cert=str(pki.client_cert),
                client_key=str(pki.client_key),
            )
            assert json.loads(await call(kind, with_cert, up.url, {}))["id"]
            assert up.clients == ["fkllm-client"]
            with pytest.raises(httpx.TransportError):
                await call(kind, provider(ca_file=str(pki.ca)), up.url, {})
            assert up.clients == ["fkllm-client"]
        finally:
            up.server.close()


# --- proxies --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
class TestProxy:
    async def test_https_goes_through_a_connect_tunnel_with_credentials(
        self, kind: str, pki: Pki, tls_upstream: Upstream, proxy: ForwardProxy
    ) -> None:
        config = provider(ca_file=str(pki.ca), proxy=proxy.url("fk:s3cret%20pass"))
        body = await call(kind, config, tls_upstream.url, {})
        assert json.loads(body)["id"] == "chatcmpl-egress"
        authority = tls_upstream.url.removeprefix("https://")
        assert proxy.asked == [("CONNECT", authority, "fk:s3cret pass")]

    async def test_plain_http_is_asked_for_in_absolute_form(
        self, kind: str, proxy: ForwardProxy
    ) -> None:
        up = await start_upstream(None)
        try:
            config = provider(proxy=proxy.url("fk:s3cret%20pass"))
            assert json.loads(await call(kind, config, up.url, {}))["id"]
            assert proxy.asked == [("POST", up.url + "/v1/chat/completions", "fk:s3cret pass")]
        finally:
            up.server.close()

    async def test_wrong_credentials_fail_to_connect(
        self, kind: str, pki: Pki, tls_upstream: Upstream, proxy: ForwardProxy
    ) -> None:
        """The proxy's 407, to a tunnel or to a plain request, is a transport error (the
        provider was never reached), not an answer to relay."""
        config = provider(ca_file=str(pki.ca), proxy=proxy.url("fk:wrong"))
        with pytest.raises(httpx.TransportError):
            await call(kind, config, tls_upstream.url, {})
        assert tls_upstream.clients == []
        up = await start_upstream(None)
        try:
            with pytest.raises(httpx.TransportError):
                await call(kind, provider(proxy=proxy.url("fk:wrong")), up.url, {})
            assert up.clients == []
        finally:
            up.server.close()

    async def test_https_proxy_from_the_environment(
        self, kind: str, pki: Pki, tls_upstream: Upstream, proxy: ForwardProxy
    ) -> None:
        environ = {"HTTPS_PROXY": proxy.url("fk:s3cret%20pass")}
        assert json.loads(
            await call(kind, provider(ca_file=str(pki.ca)), tls_upstream.url, environ)
        )
        assert [method for method, _, _ in proxy.asked] == ["CONNECT"]

    async def test_no_proxy_and_proxy_none_go_direct(
        self, kind: str, pki: Pki, tls_upstream: Upstream, proxy: ForwardProxy
    ) -> None:
        environ = {"https_proxy": proxy.url("fk:s3cret%20pass"), "NO_PROXY": "localhost,127.0.0.1"}
        trusted = provider(ca_file=str(pki.ca))
        assert json.loads(await call(kind, trusted, tls_upstream.url, environ))
        direct = provider(ca_file=str(pki.ca), proxy="none")
        assert json.loads(await call(kind, direct, tls_upstream.url, {"HTTPS_PROXY": proxy.url()}))
        assert proxy.asked == []
        assert len(tls_upstream.clients) == 2


# --- the config's checks ------------------------------------------------------------------------


def _config_file(tmp_path: Path, extra: str) -> Path:
    """A config with one openai provider carrying ``extra`` settings, and one model."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[[providers]]
name = "up"
type = "openai"
base_url = "https://llm.internal/v1"
api_key = "k"
{extra}

[[models]]
name = "m"
targets = [{{ provider = "up", model = "m" }}]
"""
    )
    return path


def _problems(tmp_path: Path, extra: str, environ: dict[str, str] | None = None) -> str:
    path = _config_file(tmp_path, extra)
    with pytest.raises(ConfigError) as refused:
        load_config(config_path=path, environ=environ or {})
    return "\n".join(refused.value.problems)


class TestConfig:
    def test_a_proxy_that_is_not_http_is_refused(self, tmp_path: Path) -> None:
        shown = _problems(tmp_path, 'proxy = "socks5://127.0.0.1:1080"')
        assert "providers[0].proxy" in shown and "http://" in shown

    def test_a_bad_proxy_variable_is_refused_by_name(self, tmp_path: Path) -> None:
        shown = _problems(tmp_path, "", {"HTTPS_PROXY": "socks5://127.0.0.1:1080"})
        assert "HTTPS_PROXY is not an http:// proxy URL" in shown

    def test_files_that_are_not_pem_and_a_key_alone(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.pem"
        junk.write_text("not a certificate")
        shown = _problems(
            tmp_path, f'ca_file = "{junk}"\nclient_key = "{tmp_path / "missing.key"}"'
        )
        assert "providers[0].ca_file" in shown and "PEM" in shown
        assert "client_key needs client_cert" in shown

    def test_good_settings_load(self, tmp_path: Path, pki: Pki) -> None:
        path = _config_file(
            tmp_path,
            f'proxy = "http://fk:pw@proxy.internal:3128"\nca_file = "{pki.ca}"\n'
            f'client_cert = "{pki.client_cert}"\nclient_key = "{pki.client_key}"',
        )
        config = load_config(config_path=path, environ={}).config
        (up,) = config.providers
        assert up.proxy == "http://fk:pw@proxy.internal:3128" and up.ca_file == str(pki.ca)
        shown = redacted(config)["providers"][0]["proxy"]
        assert shown == "http://fk:<redacted>@proxy.internal:3128"
        assert "pw" in secret_values(config)


# --- the daemon ----------------------------------------------------------------------------------


class _Background:
    """An event loop on a thread, for servers a subprocess talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)


@pytest.fixture
def background() -> Iterator[_Background]:
    running = _Background()
    yield running
    running.stop()


def test_fkllm_serve_through_the_env_files_proxy_to_a_private_ca(
    tmp_path: Path, pki: Pki, background: _Background
) -> None:
    """HTTPS_PROXY in the env file, the provider's CA in ca_file: a chat completion arrives
    through the tunnel, and the proxy's password appears in no log line."""
    up = background.run(start_upstream(pki))
    proxy = background.run(ForwardProxy(credentials="fk:tunnel-pw-7731").start())
    config = f"""
[[providers]]
name = "private"
type = "openai"
base_url = "{up.url}/v1"
api_key = "upstream-key"
ca_file = "{pki.ca}"

[[models]]
name = "m"
targets = [{{ provider = "private", model = "m" }}]
"""
    env_file = f"HTTPS_PROXY={proxy.url('fk:tunnel-pw-7731')}\n"
    with RunningDaemon(tmp_path, config, env_file_text=env_file) as daemon:
        response = httpx.post(
            daemon.url + "/v1/chat/completions",
            headers=daemon.headers(),
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            timeout=WAIT,
        )
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "through"
        assert proxy.asked == [("CONNECT", up.url.removeprefix("https://"), "fk:tunnel-pw-7731")]
        shown = httpx.get(daemon.url + "/admin/config", headers=daemon.headers(), timeout=WAIT)
        assert "tunnel-pw-7731" not in shown.text
        assert all("tunnel-pw-7731" not in line for line in daemon.stdout_lines())
