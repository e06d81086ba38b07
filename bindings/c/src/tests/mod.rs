//! The C ABI under `cargo test`: the calls a C program makes, against the in-process
//! emulator, and the committed header held to the Rust side.

mod calls;
mod features;
mod header;
mod signed;
