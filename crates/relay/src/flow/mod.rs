//! The relay's machines (issue #52): sans-IO parts that say what their host does next and take
//! what it got, holding every decision; each host drives them with one loop.

pub mod background;
