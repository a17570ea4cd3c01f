#!/usr/bin/env bash
# Generates Python stubs from proto/ with the standard gRPC tools
# (Debian: apt-get install python3-grpcio python3-grpc-tools; or pip install grpcio-tools).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$here/../../../proto"
out="${1:-$here/gen}"
mkdir -p "$out"
"${PYTHON:-python3}" -m grpc_tools.protoc -I "$proto" --python_out="$out" --grpc_python_out="$out" \
  agentd/v1/agent_service.proto agentd/v1/auth_service.proto agentd/v1/key_service.proto agentd/v1/task.proto \
  agentd/v1/task_service.proto agentd/v1/webhook_service.proto \
  google/rpc/error_details.proto google/rpc/status.proto
# Packages for the generated imports (agentd.v1…, google.rpc…); google.protobuf comes with protobuf.
touch "$out/agentd/__init__.py" "$out/agentd/v1/__init__.py"
