"""``python -m service``: start the Modelship model server (see ``--help``)."""

from __future__ import annotations

import importlib.util
import os
import sys

from pydantic import ValidationError


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from service.cli import parse_settings
    from service.errors import ServingError
    from service.server import run

    try:
        settings = parse_settings()
        if settings.runtime != "litert" and importlib.util.find_spec("tensorflow.python") is None:
            raise ValueError(
                f"--runtime={settings.runtime} needs TensorFlow, which is not installed here (the slim "
                "image has none): use --runtime=litert"
            )
        settings.models()
        settings.auth_token_value()
        traffic_file = settings.traffic_config_file
        if traffic_file is not None and not (
            settings.traffic_config_file_optional and not traffic_file.exists()
        ):
            from service.traffic import parse

            parse(traffic_file.read_bytes(), str(traffic_file))
        from service.grpc.server import h2_server, parse_channel_arguments

        channel_arguments = parse_channel_arguments(settings.grpc_channel_arguments)
        if settings.grpc_server == "modelship":
            h2_server(channel_arguments)  # refuses the arguments it cannot honour
        if settings.enable_batching:
            from service.batching import BatchingParameters

            BatchingParameters.load(settings.batching_parameters_file, 1)
    except (ValidationError, ServingError, OSError, ValueError) as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
