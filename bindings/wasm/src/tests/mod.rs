//! The engine step by step, and the same answers classified by the native typed parser and by
//! the engine (run by scripts/test-wasm.sh in node and headless Chromium).

mod engine;
mod faces;
