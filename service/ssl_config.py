"""TensorFlow Serving's ``--ssl_config_file``: the ``SSLConfig`` text proto, parsed exactly.

TF Serving's ``ssl_config.proto`` is::

    message SSLConfig {
      string server_key = 1;   // PEM private key
      string server_cert = 2;  // PEM certificate chain
      string custom_ca = 3;    // PEM roots client certificates must chain to
      bool client_verify = 4;  // require and verify a client certificate
    }

The message is not in the ``tensorflow-serving-api`` wheel, so it is declared here from that
definition in a private descriptor pool and parsed with protobuf's own text-format parser: the
same escapes, comments and string concatenation a TF Serving config file may use.

TF Serving gives ``custom_ca`` meaning only with ``client_verify`` (the server otherwise never
requests a client certificate), and so does this: ``client_verify: true`` is ``require``, anything
else ``none``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from service.errors import InvalidArgument

_FIELDS = (
    ("server_key", descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
    ("server_cert", descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
    ("custom_ca", descriptor_pb2.FieldDescriptorProto.TYPE_STRING),
    ("client_verify", descriptor_pb2.FieldDescriptorProto.TYPE_BOOL),
)


@cache
def ssl_config_class() -> Any:
    """The ``tensorflow.serving.SSLConfig`` message class (its own pool: no clash with TF's)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="modelship/tensorflow_serving_ssl_config.proto", package="tensorflow.serving", syntax="proto3"
    )
    message = proto.message_type.add(name="SSLConfig")
    for number, (name, kind) in enumerate(_FIELDS, start=1):
        message.field.add(
            name=name, number=number, type=kind, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


def parse(text: str, source: str) -> tuple[bytes, bytes, bytes | None, str]:
    """(certificate chain, key, client CA or None, client auth mode) from an SSLConfig text."""
    config = ssl_config_class()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise InvalidArgument(f"{source}: not an SSLConfig text proto: {exc}") from exc
    missing = [name for name in ("server_cert", "server_key") if not getattr(config, name).strip()]
    if missing:
        raise InvalidArgument(f"{source}: SSLConfig needs {' and '.join(missing)} (PEM text)")
    if config.client_verify and not config.custom_ca.strip():
        raise InvalidArgument(
            f"{source}: client_verify needs custom_ca (the PEM CA client certificates chain to)"
        )
    client_ca = config.custom_ca.encode() if config.client_verify else None
    return (
        config.server_cert.encode(),
        config.server_key.encode(),
        client_ca,
        ("require" if config.client_verify else "none"),
    )
