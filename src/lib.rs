//! b24bind keeps a Bitrix24 application's event handlers exactly as its manifest says.
//!
//! The library is the whole engine: [`manifest`] reads and validates `handlers.toml`, [`plan`]
//! computes the difference against a portal without any I/O, [`apply`] carries it out through a
//! [`portal::Portal`], and [`emulator`] is a faithful stand-in for a portal's event API. The
//! `b24bind` binary only parses arguments, renders and picks exit codes. Nothing here prints,
//! exits or reads the process environment.

pub mod apply;
pub mod emulator;
pub mod fleet;
pub mod glob;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod portal;
pub mod preflight;
pub mod reconcile;
pub mod redact;
pub mod render;
pub mod secret;
pub mod suggest;
pub mod timefmt;
