//! The engine step by step, and the same answers classified by the native typed parser and by
//! the engine, hand-written (faces.rs) and generated (one_answer.rs); run by
//! scripts/test-wasm.sh in node and headless Chromium.

mod engine;
mod faces;
mod one_answer;
