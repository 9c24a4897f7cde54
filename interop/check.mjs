// Interop check with an MCP client this project did not write: the TypeScript SDK calls both tools over
// stdio and streamable HTTP, with progress. Exits non-zero on the first broken expectation.
//   RETAB_MCP_PYTHON=/path/to/python node check.mjs
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { startHttpServer } from "./serve.mjs";

const python = process.env.RETAB_MCP_PYTHON || "python";
const FINISHED = "exprun_NzgyL-WnaCEXXx5ET7SNt"; // the demo scenario's latest completed run
const LONG = "exprun_-cIfzXkxKvNbJ7uBX6eDO"; // a ten-minute run, still going

async function exercise(transport, label) {
  const client = new Client({ name: "interop-check", version: "1.0.0" });
  await client.connect(transport);
  const { tools } = await client.listTools();
  for (const name of ["get_experiment_run", "wait_for_run", "triage_experiment_run"]) assert.ok(tools.some((t) => t.name === name), name);
  for (const tool of tools) assert.ok(tool.outputSchema, `${tool.name} has an outputSchema`);

  const got = await client.callTool({ name: "get_experiment_run", arguments: { run_id: FINISHED } });
  assert.equal(got.isError ?? false, false);
  assert.equal(got.structuredContent.status, "completed");
  assert.ok(got.content[0].text.startsWith(FINISHED));

  const progress = [];
  const waited = await client.callTool(
    { name: "wait_for_run", arguments: { run_id: LONG, timeout_s: 2 } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p.progress), timeout: 30_000 },
  );
  assert.equal(waited.structuredContent.timed_out, true);
  assert.equal(waited.structuredContent.finished, false);
  // The TS SDK may drop a progress event that shares a chunk with the result: check order, not count.
  // The first poll's event comes seconds before this result, so at least that one must arrive.
  assert.ok(progress.length >= 1, "at least one progress event");
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], "progress increases");

  const bad = await client.callTool({ name: "get_experiment_run", arguments: { run_id: "not an id" } });
  assert.equal(bad.isError, true);
  await client.close();
  console.log(`ok ${label}: ${tools.length} tools, structured output, ${progress.length} progress event(s), tool errors`);
}

async function startHttp() {
  const { child, url } = await startHttpServer(python, ["--demo"]);
  return { child, url: new URL(url) };
}

let passed = 0;
let failed = 0;
for (const [label, run] of [
  ["stdio", () => exercise(new StdioClientTransport({ command: python, args: ["-m", "retab_mcp", "--demo"] }), "stdio")],
  ["http", async () => {
    const { child, url } = await startHttp();
    try {
      await exercise(new StreamableHTTPClientTransport(url), "streamable HTTP");
    } finally {
      child.kill();
    }
  }],
]) {
  try {
    await run();
    passed++;
  } catch (error) {
    failed++;
    console.error(`FAIL ${label}:`, error);
  }
}
console.log(failed ? `interop: ${failed} of ${passed + failed} checks FAILED` : `interop: all ${passed} checks ok`);
process.exit(failed ? 1 : 0);
