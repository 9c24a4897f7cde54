// Starts retab-mcp over streamable HTTP for an interop script: port 0, so the server binds a port the system
// chooses and names it in its ready line. Resolves to the process and its MCP endpoint.
import { spawn } from "node:child_process";

export async function startHttpServer(python, args = [], env = process.env) {
  const child = spawn(python, ["-m", "retab_mcp", ...args, "--transport", "http", "--port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
    env,
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("HTTP server did not start in 30 s")), 30_000);
    let seen = "";
    child.stderr.on("data", (chunk) => {
      seen += chunk;
      const ready = seen.match(/serving on http:\/\/[^\s/]+:(\d+)\//);
      if (ready) {
        clearTimeout(timer);
        resolve(Number(ready[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`HTTP server exited (${code}): ${seen}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}
