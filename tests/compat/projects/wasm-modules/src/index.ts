import add from "./add.wasm";
import page from "./page.html";

// add.wasm: (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
const instance = new WebAssembly.Instance(add);
const sum = (instance.exports as { add(a: number, b: number): number }).add;

export default {
  fetch(): Response {
    return new Response(`${sum(2, 3)} ${page.trim()}`);
  },
};
