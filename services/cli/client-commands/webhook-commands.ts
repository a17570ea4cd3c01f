// `agentd webhooks …`: webhook endpoints and the delivery log of a running server (client).
import type { Command } from "commander";
import {
  CreateWebhookEndpointResponseSchema,
  DeliveryState,
  ListWebhookDeliveriesResponseSchema,
  ListWebhookEndpointsResponseSchema,
  RetryWebhookDeliveryResponseSchema,
} from "../../../gen/agentd/v1/webhook_service_pb.js";
import { ConfigError } from "../../shared/config.js";
import { action, collect, type Flags, print, withConnectionOptions } from "./command-kit.js";
import { connect } from "./connection.js";

export function registerWebhookCommands(program: Command): void {
  const webhooks = program
    .command("webhooks")
    .description("Webhook endpoints and deliveries on a running server (client).");
  const endpoints = webhooks.command("endpoints").description("Webhook endpoints of your tenant.");
  withConnectionOptions(endpoints.command("list", { isDefault: true }).description("List the endpoints.")).action(
    action(async (flags: Flags) => {
      print(
        flags,
        ListWebhookEndpointsResponseSchema,
        await (await connect(flags)).client.webhooks.listWebhookEndpoints({ pageSize: 100 }),
      );
      return 0;
    }),
  );
  withConnectionOptions(
    endpoints.command("create").description("Create an endpoint; prints its signing secret once.").argument("<url>"),
  )
    .option(
      "--event-types <types>",
      "Comma-separated: task.running, task.input_required, task.succeeded, task.failed, task.canceled, task.progress.",
    )
    .option("--description <text>", "A note.")
    .action(
      action(async (url: string, flags: Flags & { eventTypes?: string; description?: string }) => {
        const res = await (await connect(flags)).client.webhooks.createWebhookEndpoint({
          url,
          eventTypes: (flags.eventTypes ?? "")
            .split(",")
            .map((t) => t.trim())
            .filter(Boolean),
          description: flags.description ?? "",
        });
        print(flags, CreateWebhookEndpointResponseSchema, res);
        return 0;
      }),
    );
  withConnectionOptions(
    endpoints.command("delete").description("Delete an endpoint.").argument("<endpoint-id>"),
  ).action(
    action(async (endpointId: string, flags: Flags) => {
      await (await connect(flags)).client.webhooks.deleteWebhookEndpoint({ endpointId });
      return 0;
    }),
  );
  const DELIVERY_STATES = ["pending", "sending", "succeeded", "failed"];
  withConnectionOptions(webhooks.command("deliveries").description("The delivery log, newest first."))
    .option("--endpoint <id>", "Only this endpoint's deliveries.")
    .option("--task <id>", "Only this task's deliveries.")
    .option("--state <state>", `Only deliveries in this state (repeatable): ${DELIVERY_STATES.join(", ")}.`, collect)
    .action(
      action(async (flags: Flags & { endpoint?: string; task?: string; state?: string[] }) => {
        const states = (flags.state ?? []).map((s) => {
          const state = DeliveryState[s.toUpperCase() as keyof typeof DeliveryState];
          if (state === undefined || !DELIVERY_STATES.includes(s.toLowerCase())) {
            throw new ConfigError(`invalid --state ${JSON.stringify(s)}: one of ${DELIVERY_STATES.join(", ")}`);
          }
          return state;
        });
        const res = await (await connect(flags)).client.webhooks.listWebhookDeliveries({
          endpointId: flags.endpoint ?? "",
          taskId: flags.task ?? "",
          states,
          pageSize: 100,
        });
        print(flags, ListWebhookDeliveriesResponseSchema, res);
        return 0;
      }),
    );
  withConnectionOptions(
    webhooks
      .command("retry")
      .description("Send a delivery again (a dead letter, or one waiting to retry).")
      .argument("<delivery-id>"),
  ).action(
    action(async (deliveryId: string, flags: Flags) => {
      print(
        flags,
        RetryWebhookDeliveryResponseSchema,
        await (await connect(flags)).client.webhooks.retryWebhookDelivery({ deliveryId }),
      );
      return 0;
    }),
  );
}
