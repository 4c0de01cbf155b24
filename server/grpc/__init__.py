"""The gRPC layer: servicers, conversions between protobuf and domain types, the status table
and the interceptors. Protobuf and grpc stop here; the domain below raises plain exceptions
(server/service_errors.py) that ``errors.ErrorMappingInterceptor`` maps to status codes."""
