// The RetryWebhookDelivery rule, decided on the locked delivery row (pure).
import { describe, expect, it } from "vitest";
import { retryRefusal } from "../../services/agent/endpoints/retry-delivery.js";

const endpointId = "0190f0e0-0000-7000-8000-000000000001";

describe("retryRefusal", () => {
  it("allows pending, dead-lettered and succeeded deliveries, of an enabled endpoint or a per-task webhook", () => {
    for (const state of ["PENDING", "FAILED", "SUCCEEDED"] as const) {
      expect(retryRefusal({ state, endpointId, endpointEnabled: true })).toBeNull();
      expect(retryRefusal({ state, endpointId: null, endpointEnabled: null })).toBeNull();
    }
  });

  it("refuses a delivery being sent now, whatever its endpoint", () => {
    expect(retryRefusal({ state: "SENDING", endpointId, endpointEnabled: true })).toEqual({
      reason: "DELIVERY_IN_FLIGHT",
    });
    expect(retryRefusal({ state: "SENDING", endpointId, endpointEnabled: false })).toEqual({
      reason: "DELIVERY_IN_FLIGHT",
    });
    expect(retryRefusal({ state: "SENDING", endpointId: null, endpointEnabled: null })).toEqual({
      reason: "DELIVERY_IN_FLIGHT",
    });
  });

  it("refuses a delivery to a disabled endpoint, naming it", () => {
    expect(retryRefusal({ state: "FAILED", endpointId, endpointEnabled: false })).toEqual({
      reason: "ENDPOINT_DISABLED",
      endpointId,
    });
  });
});
