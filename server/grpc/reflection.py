"""Server reflection under both service names that tools use: v1alpha and v1.

grpcio-reflection ships only ``grpc.reflection.v1alpha``; newer tools (grpcurl, Postman, buf
curl) ask ``grpc.reflection.v1`` first and get UNIMPLEMENTED. The v1 protocol is v1alpha's
messages under a new package name, field for field the same wire format, so one servicer
answers both, from the same descriptor pool. (Generating v1 stubs would put a module under the
top-level name ``grpc``, which grpcio owns.)
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection for ``service_names`` (the reflection services are added) on both."""
    names = (*service_names, V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.ReflectionServicer(names)
    v1 = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
