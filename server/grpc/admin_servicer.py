"""The thin gRPC AdminService: operator calls, each behind an admin key (server/grpc/auth.py)."""

from __future__ import annotations

import grpc

from mediarec.server.grpc import recommend_convert as convert
from mediarec.server.runtime import ServiceState
from mediarec.v1 import admin_pb2, admin_pb2_grpc


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def Refresh(  # noqa: N802 (gRPC method names are fixed by the proto)
        self, request: admin_pb2.RefreshRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RefreshResponse:
        deps = self._state.require()
        return admin_pb2.RefreshResponse(state=convert.state_to_proto(deps.recommender.refresh()))
