// The host page: what a chat host does to show a tool's MCP App. It connects the TypeScript MCP client to
// retab-mcp (through the harness's same-origin /mcp), calls a tool, reads the ui:// resource the tool names,
// renders it in a sandboxed iframe under the default MCP Apps policy, and talks to it with AppBridge.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge, PostMessageTransport, RESOURCE_MIME_TYPE } from "@modelcontextprotocol/ext-apps/app-bridge";

const EXTENSION_ID = "io.modelcontextprotocol/ui";
// What a host enforces on a view that declares no domains: nothing may load from anywhere.
const DEFAULT_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:; " +
  "media-src data:; connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'";

const THEMES = {
  light: {
    "--color-background-primary": "#ffffff",
    "--color-background-secondary": "#f4f4f5",
    "--color-text-primary": "#18181b",
    "--color-text-secondary": "#52525b",
    "--color-border-primary": "#d4d4d8",
    "--font-sans": "'DejaVu Sans', system-ui, sans-serif",
  },
  dark: {
    "--color-background-primary": "#18181b",
    "--color-background-secondary": "#27272a",
    "--color-text-primary": "#f4f4f5",
    "--color-text-secondary": "#a1a1aa",
    "--color-border-primary": "#3f3f46",
    "--font-sans": "'DejaVu Sans', system-ui, sans-serif",
  },
};

let client;
let bridge;
window.viewCalls = []; // every tools/call the view made through the bridge, in order

async function connect() {
  if (client) return client;
  client = new Client(
    { name: "retab-apps-test-host", version: "1.0.0" },
    { capabilities: { extensions: { [EXTENSION_ID]: { mimeTypes: [RESOURCE_MIME_TYPE] } } } },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL("/mcp", location.href)));
  return client;
}

window.openView = async ({ tool, args, theme = "light", width = 560 }) => {
  await connect();
  const { tools } = await client.listTools();
  const listed = tools.find((t) => t.name === tool);
  const uri = listed?._meta?.ui?.resourceUri;
  if (!uri) throw new Error(`${tool} names no ui:// resource`);
  const result = await client.callTool({ name: tool, arguments: args });
  const { contents } = await client.readResource({ uri });
  const [resource] = contents;
  if (resource.mimeType !== RESOURCE_MIME_TYPE) throw new Error(`unexpected MIME type ${resource.mimeType}`);

  const iframe = document.createElement("iframe");
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.title = "Run view";
  iframe.style.cssText = `width:${width}px;height:120px;border:1px solid #ccc;border-radius:8px;display:block`;
  iframe.srcdoc = resource.text.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="${DEFAULT_CSP}">`);
  const stage = document.getElementById("stage");
  stage.style.background = theme === "dark" ? "#09090b" : "#fafafa";
  stage.replaceChildren(iframe);

  bridge = new AppBridge(
    client,
    { name: "retab-apps-test-host", version: "1.0.0" },
    { serverTools: {}, logging: {} },
    {
      hostContext: {
        theme,
        styles: { variables: THEMES[theme] },
        displayMode: "inline",
        availableDisplayModes: ["inline"],
        containerDimensions: { maxWidth: width },
        locale: "en-US",
        platform: "web",
        toolInfo: { tool: listed },
      },
    },
  );
  const initialized = new Promise((resolve) => {
    bridge.oninitialized = () => resolve();
  });
  bridge.onsizechange = ({ height }) => {
    if (height) iframe.style.height = `${height}px`;
  };
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  // A host may vet what its views call; this one forwards every call and keeps a record of it.
  bridge.oncalltool = async (params) => {
    const call = { name: params.name, arguments: params.arguments, done: false };
    window.viewCalls.push(call);
    try {
      return await client.callTool(params);
    } finally {
      call.done = true;
    }
  };
  await initialized;
  await bridge.sendToolInput({ arguments: args });
  await bridge.sendToolResult(result);
  return { uri, isError: Boolean(result.isError) };
};

window.teardownView = async () => {
  await bridge.teardownResource({});
};

// A request the view must answer: once it has, every message it posted before has reached the host.
window.pingView = async () => {
  await bridge.request({ method: "ping" });
};
