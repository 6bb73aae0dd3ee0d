"""Modelship model server: TensorFlow Serving-compatible REST and gRPC over one dataplane.

Layers, each unaware of the ones above it: ``repository`` (versions on disk, load/unload, labels)
-> ``dataplane`` (resolve a model spec, run a signature) -> transports (``rest``, ``grpc``) that only
parse, call and encode. ``server`` wires them together and owns signals and shutdown.
"""
