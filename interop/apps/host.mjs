// A test host for retab-mcp's run view, driven in headless Chromium.
//
//   node interop/apps/host.mjs --mcp http://127.0.0.1:PORT/mcp --plan plan.json [--out DIR]
//
// It serves a host page (page.js, bundled here with esbuild) on a loopback port, with /mcp passed through
// to the server so the page's MCP client speaks to it same-origin, as a web host's backend would. Each
// scenario of the plan opens the view of one tool call in a fresh page and records what a person would
// see; it prints one JSON object with the observations and leaves the judging to the test that ran it.
// A scenario of kind "gate" (a workflow run held at a review gate) stops once the view shows the gate and
// prints one line {"event": "gate", ...} before the observations; it goes on when a line comes on stdin
// (the test has decided the review meanwhile).
import http from "node:http";
import { mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: options } = parseArgs({
  options: {
    mcp: { type: "string" },
    plan: { type: "string" },
    out: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
if (!options.mcp || !options.plan) {
  console.error("usage: node host.mjs --mcp URL --plan PLAN.json [--out DIR] [--chromium PATH]");
  process.exit(2);
}
const plan = JSON.parse(await readFile(options.plan, "utf8"));
const mcpUrl = new URL(options.mcp);
if (options.out) mkdirSync(options.out, { recursive: true });

const bundle = (
  await build({ entryPoints: [path.join(here, "page.js")], bundle: true, format: "esm", write: false, logLevel: "error" })
).outputFiles[0].text;
const HOST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;font-family:sans-serif}#stage{padding:16px;display:inline-block}</style></head>
<body><div id="stage"></div><script type="module" src="/page.js"></script></body></html>`;

function serveHost() {
  const server = http.createServer((req, res) => {
    if (req.url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(HOST_PAGE);
    if (req.url === "/page.js") return res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    if (req.url === "/favicon.ico") return res.writeHead(204).end();
    if (req.url.startsWith("/mcp")) {
      const headers = { ...req.headers, host: mcpUrl.host };
      delete headers.origin; // the page's origin is this harness's; the server sees a backend's call
      const upstream = http.request(mcpUrl, { method: req.method, headers }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", (error) => res.headersSent ? res.destroy() : res.writeHead(502).end(String(error)));
      res.on("close", () => upstream.destroy()); // a page that goes away ends its streams upstream too
      return req.pipe(upstream);
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const viewState = () => {
  const text = (id) => document.getElementById(id)?.textContent.trim() ?? null;
  const shown = (id) => !document.getElementById(id).hidden;
  const bar = document.getElementById("progress");
  const items = (id) => (shown(id) ? [...document.querySelectorAll(`#${id} li`)].map((n) => n.innerText.trim()) : []);
  const heading = (id) => (shown(id) ? text(`${id}-h`) : null);
  return {
    title: text("title"),
    headline: text("headline"),
    busy: document.getElementById("view").getAttribute("aria-busy"),
    done: Number(bar.getAttribute("aria-valuenow")),
    total: Number(bar.getAttribute("aria-valuemax")),
    verdict: shown("verdict") ? text("verdict") : null,
    chartRows: [...document.querySelectorAll("#chart li .sr")].map((n) => n.textContent),
    chartShown: shown("chart"),
    barShown: shown("progress"),
    failures: items("failures"),
    blocked: items("blocked"),
    drifted: items("drifted"),
    fixes: items("fixes"),
    fields: items("fields"),
    headings: Object.fromEntries(["failures", "blocked", "drifted", "fixes", "fields"].map((id) => [id, heading(id)])),
    facts: shown("facts")
      ? Object.fromEntries([...document.querySelectorAll("#facts div")].map((d) => [d.firstChild.textContent, d.lastChild.textContent]))
      : {},
    tally: shown("tally") ? document.querySelector("#tally figcaption").innerText.trim() : null,
    gate: shown("gate") ? document.getElementById("gate").innerText.trim() : null,
    reviews: items("gate"),
    againNote: text("again-note"),
    note: shown("note") ? text("note") : null,
    scripts: document.scripts.length,
    images: document.images.length,
    pwned: Boolean(window.__pwned),
    background: getComputedStyle(document.body).backgroundColor,
    overflowX: document.documentElement.scrollWidth > window.innerWidth,
  };
};

async function runScenario(browser, origin, scenario) {
  const page = await browser.newPage({ viewport: { width: (scenario.width ?? 560) + 80, height: 900 } });
  const seen = { consoleErrors: [], viewRequests: [], offsiteRequests: [], progress: [] };
  page.on("console", (message) => {
    if (message.type() === "error") seen.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => seen.consoleErrors.push(String(error)));
  page.on("request", (request) => {
    if (request.frame() !== page.mainFrame()) seen.viewRequests.push(request.url());
    else if (!request.url().startsWith(origin)) seen.offsiteRequests.push(request.url());
  });
  const timeout = (scenario.timeout_s ?? 30) * 1000;
  page.setDefaultTimeout(timeout);
  await page.goto(origin + "/");
  await page.waitForFunction(() => typeof window.openView === "function");
  seen.opened = await page.evaluate((s) => window.openView(s), {
    tool: scenario.tool,
    args: scenario.args,
    theme: scenario.theme ?? "light",
    width: scenario.width ?? 560,
  });
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const shot = async (name) => {
    if (options.out && name) await page.locator("#stage").screenshot({ path: path.join(options.out, name) });
  };
  const state = () => frame.evaluate(viewState);
  // Until the bar or whether the view is busy changes (or, for a workflow run, which has no bar, the headline).
  const changed = (last, headline = null) =>
    frame.waitForFunction(
      ([done, busy, said]) =>
        Number(document.getElementById("progress").getAttribute("aria-valuenow")) !== done ||
        document.getElementById("view").getAttribute("aria-busy") !== busy ||
        (said !== null && document.getElementById("headline").textContent.trim() !== said),
      [last.done, last.busy, headline],
      { timeout },
    );

  if (scenario.kind === "follow") {
    // Each change of the bar, until the run has ended and the view has explained it.
    let last = await state();
    seen.progress.push([last.done, last.total, last.headline]);
    let shotRunning = false;
    while (!(last.busy === "false" && (last.chartShown || last.verdict || last.note))) {
      await changed(last);
      last = await state();
      seen.progress.push([last.done, last.total, last.headline]);
      if (!shotRunning && last.done > 0 && last.done < last.total) {
        shotRunning = true;
        await shot(scenario.screenshots?.running);
      }
    }
  } else if (scenario.kind === "gate") {
    // Follow the run to its gate; ask to be waited once before anyone decided; then, once the test has
    // decided the review, ask again and follow the run to its end.
    let last = await state();
    seen.progress.push([last.headline, last.gate !== null]);
    while (!(last.gate !== null && last.busy === "false")) {
      await changed(last, last.headline);
      last = await state();
      seen.progress.push([last.headline, last.gate !== null]);
    }
    seen.atGate = last;
    seen.ariaAtGate = await frame.locator("body").ariaSnapshot();
    seen.callsAtGate = await page.evaluate(() => window.viewCalls.length);
    await shot(scenario.screenshots?.gate);
    await frame.click("#again");
    await frame.waitForFunction(() => document.getElementById("again-note").textContent.startsWith("Still"));
    seen.undecided = await state();
    process.stdout.write(JSON.stringify({ event: "gate", scenario: scenario.name, reviews: seen.atGate.reviews }) + "\n");
    await nextLine();
    await frame.click("#again");
    last = await state();
    seen.progress.push([last.headline, last.gate !== null]);
    while (!(last.busy === "false" && last.verdict && last.gate === null)) {
      await changed(last, last.headline);
      last = await state();
      seen.progress.push([last.headline, last.gate !== null]);
    }
  } else if (scenario.kind === "teardown") {
    await page.waitForFunction(() => window.viewCalls.some((c) => c.name === "wait_for_run"));
    await page.evaluate(() => window.teardownView());
    seen.callsAtTeardown = await page.evaluate(() => window.viewCalls.length);
    await page.waitForFunction(() => window.viewCalls.every((c) => c.done));
    await page.evaluate(() => window.pingView());
  } else {
    await frame.waitForFunction(() => {
      const busy = document.getElementById("view").getAttribute("aria-busy") === "true";
      const said = ["verdict", "failures", "note", "gate"].some((id) => !document.getElementById(id).hidden);
      return !busy && said;
    });
  }
  seen.final = await state();
  seen.aria = await frame.locator("body").ariaSnapshot();
  seen.calls = await page.evaluate(() => window.viewCalls.map((c) => ({ name: c.name, arguments: c.arguments })));
  await shot(scenario.screenshots?.final);
  await page.close();
  return seen;
}

let lines;
async function nextLine() {
  lines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const { done } = await lines.next();
  if (done) throw new Error("stdin closed before the test said to go on");
}

const hostServer = await serveHost();
const origin = `http://127.0.0.1:${hostServer.address().port}`;
const browser = await chromium.launch({ executablePath: options.chromium, headless: true });
const observations = {};
try {
  for (const scenario of plan) observations[scenario.name] = await runScenario(browser, origin, scenario);
} finally {
  await browser.close();
  hostServer.closeAllConnections();
  hostServer.close();
}
process.stdout.write(JSON.stringify(observations) + "\n", () => process.exit(0));
