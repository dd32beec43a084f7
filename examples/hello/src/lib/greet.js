// A module in a subfolder: uploaded as src/lib/greet.js, imported as ./lib/greet.js.
export function greet(greeting, who) {
  return `${greeting ?? "Hello"}, ${who}!`;
}
