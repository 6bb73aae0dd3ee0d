"""TLS configuration without a server: TF Serving's SSLConfig, the settings' rules, bad material."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service import ssl_config
from service.errors import InvalidArgument
from service.settings import Settings
from service.tls import TlsFiles, TlsManager, server_context
from tests.tls_certs import CertificateAuthority, make_pki


def test_ssl_config_parses_text_proto_with_comments_escapes_and_concatenation() -> None:
    text = (
        "# comment\n"
        'server_key: "KEY\\nLINE"\n'
        'server_cert: "CERT" "-CONT"\n'
        "custom_ca: 'CA'\n"
        "client_verify: true\n"
    )
    assert ssl_config.parse(text, "f") == (b"CERT-CONT", b"KEY\nLINE", b"CA", "require")


def test_custom_ca_without_client_verify_means_no_client_certificates() -> None:
    # TF Serving never requests a client certificate unless client_verify is true
    assert ssl_config.parse('server_key: "K" server_cert: "C" custom_ca: "CA"', "f")[2:] == (None, "none")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server_cert: "C"', "needs server_key"),
        ("", "needs server_cert and server_key"),
        ('server_key: "K" server_cert: "C" client_verify: true', "client_verify needs custom_ca"),
        ('server_key: "K" bogus_field: 1', "not an SSLConfig"),
        ("server_key: K", "not an SSLConfig"),
    ],
)
def test_ssl_config_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ssl_config.parse(text, "ssl.conf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tls_cert_file": "c"}, "go together"),
        ({"tls_key_file": "k"}, "go together"),
        (
            {"tls_cert_file": "c", "tls_key_file": "k", "tls_client_auth": "require"},
            "needs tls_client_ca_file",
        ),
        ({"tls_cert_file": "c", "tls_key_file": "k", "tls_client_ca_file": "ca"}, "say optional or require"),
        ({"ssl_config_file": "s", "tls_cert_file": "c", "tls_key_file": "k"}, "use one"),
        ({"ssl_config_file": "s", "tls_client_auth": "optional"}, "client_verify in that file"),
        ({"tls_client_ca_file": "ca", "tls_client_auth": "optional"}, "needs TLS on"),
        ({"tls_client_auth": "always"}, "tls_client_auth"),
    ],
)
def test_settings_refuse_incoherent_tls(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_mismatched_key_and_bad_ca_are_start_up_errors(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    other = CertificateAuthority().server()
    with pytest.raises(InvalidArgument, match="not usable together"):
        TlsManager(TlsFiles(pki.server_dir / "tls.crt", other.write(tmp_path / "other") / "tls.key"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(InvalidArgument, match="client CA"):
        TlsManager(
            TlsFiles(
                pki.server_dir / "tls.crt", pki.server_dir / "tls.key", tmp_path / "junk.pem", None, "require"
            )
        )
    with pytest.raises(InvalidArgument, match="unreadable"):
        TlsManager(TlsFiles(tmp_path / "missing.crt", pki.server_dir / "tls.key"))


def test_contexts_offer_the_right_alpn_and_client_verification(tmp_path: Path) -> None:
    import ssl

    pki = make_pki(tmp_path)
    material, _ = TlsFiles(pki.server_dir / "tls.crt", pki.server_dir / "tls.key", pki.ca_file).read()
    # REST asks for, gRPC requires, a client certificate under `require` (health must stay open on REST)
    assert server_context(material, "require", "rest").verify_mode == ssl.CERT_OPTIONAL
    assert server_context(material, "require", "grpc").verify_mode == ssl.CERT_REQUIRED
    assert server_context(material, "none", "grpc").verify_mode == ssl.CERT_NONE
    assert server_context(material, "none", "rest").minimum_version == ssl.TLSVersion.TLSv1_2


def test_reload_refuses_a_change_of_client_auth_mode(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config = tmp_path / "ssl.conf"

    def write(verify: bool) -> None:
        def q(pem: bytes) -> str:
            return '"' + pem.decode().replace("\n", "\\n") + '"'

        config.write_text(
            f"server_key: {q(pki.server.key)} server_cert: {q(pki.server.cert)} custom_ca: {q(pki.ca.pem)} "
            f"client_verify: {'true' if verify else 'false'}"
        )

    write(False)
    manager = TlsManager(TlsFiles(ssl_config_file=config))
    write(True)
    manager.check()
    assert manager.reload_errors == 1
    assert manager.generation == 0
    write(False)
    assert manager.reload() is False  # back to what it serves
