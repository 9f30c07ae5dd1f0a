"""The http adaptor's TLS options against a real HTTPS server on 127.0.0.1, with a
self-signed certificate made for the test by the openssl command."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from statefn.adaptor import AdaptorError
from statefn.adaptors import http

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def https_server(certificate: tuple[Path, Path]) -> Iterator[HTTPServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request("/secure").respond_with_json({"ok": True})
    server.start()
    yield server
    server.clear()
    server.stop()


def get_secure(server: HTTPServer, tls: dict[str, Any] | None) -> dict[str, Any]:
    configuration: dict[str, Any] = {"base_url": server.url_for("/")}
    if tls is not None:
        configuration["tls"] = tls
    result: dict[str, Any] = asyncio.run(http.get("/secure")({"configuration": configuration}))
    return result


def test_self_signed_certificate_is_refused_by_default(https_server: HTTPServer) -> None:
    assert https_server.url_for("/").startswith("https://")
    with pytest.raises(AdaptorError) as caught:
        get_secure(https_server, None)
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message


def test_verify_false_accepts_the_self_signed_certificate(https_server: HTTPServer) -> None:
    assert get_secure(https_server, {"verify": False})["data"] == {"ok": True}


def test_verify_with_a_ca_file_trusts_that_certificate(
    https_server: HTTPServer, certificate: tuple[Path, Path]
) -> None:
    result = get_secure(https_server, {"verify": str(certificate[0])})
    assert result["data"] == {"ok": True}
    assert result["response"]["status"] == 200
