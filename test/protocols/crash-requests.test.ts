// Requests that once took a replica down (issue 7, part 1), sent as an attacker
// would, with curl and raw sockets and no API key, to a real `agentd serve`
// process: each gets a 4xx (or is served), and the process goes on serving.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChildAgentd, curl, healthOk, rawExchange, startChildAgentd, statusOf } from "../fuzz/child.js";

describe("requests that used to crash the process", () => {
  let agentd: ChildAgentd;

  beforeAll(async () => {
    agentd = await startChildAgentd();
  });

  afterAll(async () => {
    await agentd?.close();
  });

  async function expectStillServing() {
    expect(agentd.alive()).toBe(true);
    expect(await healthOk(agentd.url)).toBe(true);
  }

  it("malformed percent-encoding in the SSE task id is 400, not a crash", async () => {
    const answer = await curl([`${agentd.url}/v1/tasks/%ZZ/events`]);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "invalid_argument" });
    await expectStillServing();
  });

  it("a path of two slashes is 404, not a crash", async () => {
    const answer = await curl(["--path-as-is", `${agentd.url}//`]);
    expect(answer.status).toBe(404);
    for (const path of ["//v1/tasks/x/events", "//x/y?z", "///"]) {
      expect((await curl(["--path-as-is", `${agentd.url}${path}`])).status).toBe(404);
    }
    await expectStillServing();
  });

  it("HTTP/1.0 without Host is served (the authority is not needed), not a crash", async () => {
    const answer = await curl([
      "--http1.0",
      "-H",
      "Host:",
      "-H",
      "content-type: application/json",
      "-d",
      "{}",
      `${agentd.url}/grpc.health.v1.Health/Check`,
    ]);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ status: "SERVING" });
    // The same on an RPC that needs a key: the auth answer, not a crash.
    const noKey = await curl([
      "--http1.0",
      "-H",
      "Host:",
      "-H",
      "content-type: application/json",
      "-d",
      "{}",
      `${agentd.url}/agentd.v1.TaskService/ListTasks`,
    ]);
    expect(noKey.status).toBe(401);
    await expectStillServing();
  });

  it("raw requests with an empty, malformed or absent authority get an answer", async () => {
    const requests = [
      "POST /grpc.health.v1.Health/Check HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost:\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: [\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
      "GET /v1/tasks/%ZZ/events HTTP/1.0\r\n\r\n",
      "GET // HTTP/1.0\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n",
      "GET http://example.com/v1/tasks/x/events HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n",
    ];
    const statuses = [];
    for (const request of requests) {
      const { data } = await rawExchange(agentd.port, Buffer.from(request, "latin1"), { timeoutMs: 5_000 });
      statuses.push(statusOf(data));
    }
    expect(statuses).toEqual([200, 200, 400, 400, 404, 404, 404]);
    await expectStillServing();
  });

  it("logged nothing at error level for any of these bad requests", () => {
    // Bad input is the client's problem, not an unexpected error of the server.
    expect(agentd.errorLogs()).toEqual([]);
  });
});
