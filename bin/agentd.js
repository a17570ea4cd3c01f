#!/usr/bin/env node
// The agentd command. Runs the TypeScript sources directly through tsx, so there is no build step.
import { register } from "tsx/esm/api";

register();
await import("../services/cli/main.ts");
