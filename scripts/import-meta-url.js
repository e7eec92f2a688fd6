// Injected by scripts/build-cjs.js into the CommonJS bundles in place of
// import.meta.url, which CommonJS lacks: the URL of the bundle file itself.
// Written so that esbuild can see it has no side effects (a pure call, nothing
// read at the top level): a bundle that never uses it, such as
// dist/cgi/gateway.cjs whose start-up every CGI request pays, leaves it out.

const bundleUrl = () => require("node:url").pathToFileURL(__filename).href;

export const import_meta_url = /* @__PURE__ */ bundleUrl();
