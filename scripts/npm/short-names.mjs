// Renames a wasm-bindgen module's imports and exports to short names, in the .wasm and in its
// glue, the same way in both (scripts/build-npm.sh, for the client's engine only):
//
//   node scripts/npm/short-names.mjs target/npm/pkg/polar_license_bg.wasm target/npm/pkg/polar_license.js
//
// wasm-bindgen names each import `__wbg_<what>_<16 hex digits>` and each export after the Rust
// item (`engine_call`, `__wbindgen_malloc`…): about 1 KB of names in the .wasm and again in the
// glue, the hex digits beyond gzip's reach, and esbuild cannot shorten them (object keys and
// property names). Renamed to `a`, `b`…: the default entry 740 B smaller gzipped (measured on
// 2026-11-26). Nothing else names them: the glue is the only JS that touches the instance's
// exports, and its import object the only one the .wasm is given (the module name, `memory` and
// the import kinds stay). Each import name must occur exactly once in the glue and no export
// name may be left in it after the rename, so a wasm-bindgen that writes its glue differently
// fails the build here rather than shipping a module its glue cannot instantiate.
import { readFileSync, writeFileSync } from "node:fs";

const [wasmPath, gluePath] = process.argv.slice(2);
if (!wasmPath || !gluePath) {
    console.error("usage: node short-names.mjs MODULE_bg.wasm MODULE.js");
    process.exit(2);
}
const wasm = readFileSync(wasmPath);
let glue = readFileSync(gluePath, "utf8");

let at = 8; // after the magic number and the version
const uleb = () => {
    let value = 0;
    let shift = 0;
    let byte;
    do {
        byte = wasm[at++];
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
    } while (byte & 0x80);
    return value;
};
const leb = (n) => {
    const out = [];
    do {
        let byte = n & 0x7f;
        n = Math.floor(n / 128);
        if (n) byte |= 0x80;
        out.push(byte);
    } while (n);
    return Buffer.from(out);
};
const name = () => {
    const length = uleb();
    const text = wasm.subarray(at, at + length).toString("utf8");
    at += length;
    return text;
};
const encoded = (text) => Buffer.concat([leb(Buffer.byteLength(text)), Buffer.from(text, "utf8")]);
// The n-th short name: a…z, aa, ab…
const short = (n) => {
    let s = "";
    do {
        s = String.fromCharCode(97 + (n % 26)) + s;
        n = Math.floor(n / 26) - 1;
    } while (n >= 0);
    return s;
};
// Skips an import's description (after its kind byte): function, table, memory, global, tag.
const limits = () => {
    const flags = wasm[at++];
    uleb();
    if (flags & 1) uleb();
};
const description = {
    0: () => uleb(),
    1: () => {
        at++;
        limits();
    },
    2: limits,
    3: () => {
        at += 2;
    },
    4: () => {
        at++;
        uleb();
    },
};

const imports = new Map();
const exports = new Map();
const out = [wasm.subarray(0, 8)];
while (at < wasm.length) {
    const id = wasm[at++];
    const size = uleb();
    const start = at;
    const end = at + size;
    if (id === 2 || id === 7) {
        const count = uleb();
        const parts = [leb(count)];
        for (let i = 0; i < count; i++) {
            if (id === 2) {
                const module = name();
                const long = name();
                const from = at;
                const skip = description[wasm[at++]];
                if (!skip) throw new Error(`short-names: import ${long} of an unknown kind`);
                skip();
                if (!imports.has(long)) imports.set(long, short(imports.size));
                parts.push(encoded(module), encoded(imports.get(long)), wasm.subarray(from, at));
            } else {
                const long = name();
                const from = at;
                at++;
                uleb();
                let renamed = long;
                if (long !== "memory") {
                    renamed = short(exports.size);
                    exports.set(long, renamed);
                }
                parts.push(encoded(renamed), wasm.subarray(from, at));
            }
        }
        if (at !== end) throw new Error(`short-names: section ${id} did not parse to its end`);
        const body = Buffer.concat(parts);
        out.push(Buffer.from([id]), leb(body.length), body);
    } else {
        out.push(Buffer.from([id]), leb(size), wasm.subarray(start, end));
    }
    at = end;
}

const word = (text) => new RegExp(`\\b${text.replace(/[.$]/g, "\\$&")}\\b`, "g");
for (const [long, renamed] of imports) {
    const found = glue.match(word(long))?.length ?? 0;
    if (found !== 1) throw new Error(`short-names: the import ${long} is named ${found} times in the glue, not once`);
    glue = glue.replace(word(long), renamed);
}
for (const [long, renamed] of exports) {
    glue = glue.replace(word(`wasm.${long}`), `wasm.${renamed}`);
    if (word(long).test(glue)) throw new Error(`short-names: the glue names the export ${long} other than as wasm.${long}`);
}
writeFileSync(wasmPath, Buffer.concat(out));
writeFileSync(gluePath, glue);
console.log(`short-names: ${imports.size} imports and ${exports.size} exports renamed`);
