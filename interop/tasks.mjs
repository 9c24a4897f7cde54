// Waits as MCP tasks, with clients this project did not write:
// - 2025-11-25 tasks: the TypeScript SDK 1.32's client.experimental.tasks.callToolStream, over stdio and
//   streamable HTTP: a task on a run that lasts minutes, its status updates and progress, its result when the
//   run ends; another task cancelled (the run goes on);
// - 2026-07-28 tasks (io.modelcontextprotocol/tasks): the official @modelcontextprotocol/ext-tasks client on
//   @modelcontextprotocol/client 2.x, over streamable HTTP. Its design leaves the raw 2026 request to the host
//   (`rawDispatch`: the SDK client's codecs refuse task shapes); this file is that host, a plain fetch.
// Exits non-zero on the first broken expectation. Run by tests/test_tasks_interop.py:
//   RETAB_MCP_PYTHON=... RETAB_API_BASE_URL=... RETAB_API_KEY=... TASK_RUNS='{"stdio":[long,other],...}' node tasks.mjs
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttp } from "@modelcontextprotocol/client";
import { createTaskSessionFromClient, resultFromTaskOutcome } from "@modelcontextprotocol/ext-tasks/client";
import { startHttpServer } from "./serve.mjs";

const python = process.env.RETAB_MCP_PYTHON || "python";
const runs = JSON.parse(process.env.TASK_RUNS);
const serverEnv = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  RETAB_API_BASE_URL: process.env.RETAB_API_BASE_URL,
  RETAB_API_KEY: process.env.RETAB_API_KEY,
};
const TASKS = "io.modelcontextprotocol/tasks";

async function legacy(transport, label, [longRun, otherRun]) {
  const client = new Client({ name: "tasks-interop", version: "1.0.0" }, { capabilities: { tasks: { list: {}, cancel: {} } } });
  await client.connect(transport);
  assert.ok(client.getServerCapabilities().tasks?.requests?.tools?.call, "the server offers task-augmented tools/call");
  const { tools } = await client.listTools();
  assert.equal(tools.find((t) => t.name === "wait_for_run").execution?.taskSupport, "optional");

  // Another task, cancelled as soon as it exists: its wait ends, the run goes on.
  let cancelledId;
  for await (const message of client.experimental.tasks.callToolStream(
    { name: "wait_for_run", arguments: { run_id: otherRun } }, CallToolResultSchema, { task: { ttl: 600_000 } },
  )) {
    if (message.type === "taskCreated") {
      cancelledId = message.task.taskId;
      const cancelled = await client.experimental.tasks.cancelTask(cancelledId);
      assert.equal(cancelled.status, "cancelled");
    }
    if (message.type === "error") break; // the stream reports the cancelled task as its end
  }
  assert.equal((await client.experimental.tasks.getTask(cancelledId)).status, "cancelled");
  const still = await client.callTool({ name: "get_experiment_run", arguments: { run_id: otherRun } });
  // Still going: queued for its first 2 s (a loaded machine may get here that soon), then running.
  assert.ok(["queued", "running"].includes(still.structuredContent.status), "cancelling a task never cancels the Retab run");

  // The task on the long run: status updates while it waits, then the result when the run ends.
  const progress = [];
  const statuses = [];
  let result;
  const started = Date.now();
  for await (const message of client.experimental.tasks.callToolStream(
    { name: "wait_for_run", arguments: { run_id: longRun } },
    CallToolResultSchema,
    { task: { ttl: 900_000 }, onprogress: (p) => progress.push(p.progress) },
  )) {
    if (message.type === "taskStatus") statuses.push(message.task.statusMessage);
    if (message.type === "result") result = message.result;
    if (message.type === "error") throw message.error;
  }
  assert.equal(result.structuredContent.finished, true);
  assert.equal(result.structuredContent.status, "completed");
  const distinct = new Set(statuses.filter(Boolean));
  assert.ok(distinct.size >= 2, `status updates while waiting: ${[...distinct].join(" | ")}`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], "progress increases");
  const { tasks } = await client.experimental.tasks.listTasks();
  assert.ok(tasks.some((t) => t.taskId === cancelledId && t.status === "cancelled"));
  await client.close();
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(`ok 2025 tasks over ${label}: one call, ${distinct.size} status messages, ${progress.length} progress events, result after ${seconds} s, one task cancelled`);
}

function startHttp() {
  return startHttpServer(python, [], serverEnv);
}

// The host's raw 2026 request, as the streamable HTTP transport carries it: the routing headers (Mcp-Name is
// the task id on tasks/*, which ext-tasks puts in the context), an answer as JSON or as server-sent events.
function rawDispatch(url) {
  return async (request, options = {}) => {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      "MCP-Protocol-Version": "2026-07-28",
      "Mcp-Method": request.method,
      ...(request.method === "tools/call" ? { "Mcp-Name": request.params.name } : {}),
      ...(options.context?.headers ?? {}),
    };
    const body = { jsonrpc: "2.0", id: Math.floor(Math.random() * 1e9), ...request };
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: options.signal });
    const text = await response.text();
    const messages = (response.headers.get("content-type") ?? "").includes("text/event-stream")
      ? text.split("\n").filter((line) => line.startsWith("data:")).map((line) => JSON.parse(line.slice(5)))
      : [JSON.parse(text)];
    const answer = messages.find((m) => m.id === body.id);
    return answer.error ? { kind: "error", error: answer.error } : { kind: "result", result: answer.result };
  };
}

async function modern(url, [longRun, otherRun]) {
  const client = new ModernClient(
    { name: "tasks-interop-2026", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: "2026-07-28" } } },
  );
  await client.connect(new ModernHttp(new URL(url)));
  assert.equal(client.getProtocolEra(), "modern");
  assert.deepEqual(client.getServerCapabilities().extensions?.[TASKS], {});
  const session = createTaskSessionFromClient(client, {
    endpointId: "retab-mcp-interop",
    rawDispatch: rawDispatch(url),
    v2RequestFraming: {
      protocolVersion: "2026-07-28",
      clientInfo: { name: "tasks-interop-2026", version: "1.0.0" },
      clientCapabilities: { extensions: { [TASKS]: {} } },
    },
  });
  try {
    const other = await session.callTool("wait_for_run", { run_id: otherRun });
    assert.equal(other.kind, "task");
    await other.cancel();

    const started = Date.now();
    const execution = await session.callTool("wait_for_run", { run_id: longRun });
    assert.equal(execution.kind, "task", "a 2026 request that declares the extension gets a task");
    const messages = new Set();
    const { outcome } = await execution.settle({
      onEvent(event) {
        if (event.type === "task" && event.task.statusMessage) messages.add(event.task.statusMessage);
      },
    });
    const result = resultFromTaskOutcome(outcome);
    assert.equal(result.structuredContent.finished, true);
    assert.ok(messages.size >= 2, `status messages while waiting: ${[...messages].join(" | ")}`);
    const seconds = Math.round((Date.now() - started) / 1000);
    console.log(`ok 2026 tasks over http (ext-tasks): one call, ${messages.size} status messages, result after ${seconds} s, one task cancelled`);
  } finally {
    await session.close();
    await client.close();
  }
}

const http = await startHttp();
let failed = false;
const checks = [
  ["stdio", () => legacy(new StdioClientTransport({ command: python, args: ["-m", "retab_mcp"], env: serverEnv }), "stdio", runs.stdio)],
  ["http", () => legacy(new StreamableHTTPClientTransport(new URL(http.url)), "http", runs.http)],
  ["modern", () => modern(http.url, runs.modern)],
];
await Promise.all(
  checks.map(([label, check]) =>
    check().catch((error) => {
      failed = true;
      console.error(`FAILED ${label}:`, error);
    }),
  ),
);
http.child.kill();
process.exit(failed ? 1 : 0);
