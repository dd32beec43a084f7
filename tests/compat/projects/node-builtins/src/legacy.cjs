// CommonJS as npm packages ship it: built-ins by require().
const crypto = require("crypto");
const { EventEmitter } = require("node:events");

let optional = null;
try {
  optional = require("pg-native"); // not a built-in: throws, as it would on Cloudflare
} catch {}

module.exports = {
  sha256: (text) => crypto.createHash("sha256").update(text).digest("hex"),
  emitted: () => {
    const emitter = new EventEmitter();
    let seen = optional === null ? "" : "unexpected";
    emitter.on("x", (value) => (seen += value));
    emitter.emit("x", "ok");
    return seen;
  },
};
