"use strict";
// Runs player configuration code in Node with every browser and player
// object replaced by a stub that records the calls made on it, so that
// TestConfigSnippets can compare what docs/collector.md tells users to write
// with what the test pages do. The code under test follows this file; it
// ends by calling report().
const calls = [];
// stub is a function and an object at once: any property is another stub,
// calling or constructing it is recorded. It is not a promise (no "then"),
// so awaiting one yields it at once, and JSON shows it as null.
const stub = (name) => new Proxy(function () {}, {
  get(_, prop) {
    if (prop === "then" || prop === "toJSON") return undefined;
    if (prop === Symbol.toPrimitive) return () => name;
    return stub(name + "." + String(prop));
  },
  apply(_, __, args) {
    calls.push({ call: name, args });
    return stub(name + "()");
  },
  construct(_, args) {
    calls.push({ call: "new " + name, args });
    return stub("new " + name);
  },
});
globalThis.window = globalThis;
globalThis.Hls = stub("Hls");
globalThis.shaka = stub("shaka");
globalThis.document = stub("document");
globalThis.video = stub("video");
globalThis.manifestUri = "https://cdn.example.com/title-1/master.m3u8";
// The page's query (web/page.js reads it), given as the first argument.
globalThis.location = { search: process.argv[2] || "" };
// The snippets' session id.
Object.defineProperty(globalThis, "crypto", { value: { randomUUID: () => "00000000-0000-4000-8000-000000000000" } });
// report prints the calls as JSON once every pending continuation has run.
const report = () => setTimeout(() => process.stdout.write(JSON.stringify(calls)), 0);
