#!/usr/bin/env -S npx tsx
// protoc-gen-openapi: our protoc plugin (buf.gen.yaml, local) that writes
// openapi/agentd.openapi.json from proto/ at `buf generate` time.
import { createEcmaScriptPlugin, runNodeJs } from "@bufbuild/protoplugin";
import { buildOpenApi } from "./openapi.js";

const plugin = createEcmaScriptPlugin({
  name: "protoc-gen-openapi",
  version: "v1",
  generateTs(schema) {
    const document = buildOpenApi(schema.allFiles, { title: "agentd API", version: "v1", packages: ["agentd.v1"] });
    schema.generateFile("openapi/agentd.openapi.json").print(JSON.stringify(document, null, 2));
  },
});

runNodeJs(plugin);
