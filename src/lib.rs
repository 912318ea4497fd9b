//! zoo keeps a model zoo honest: model cards are typed data, and every claim in them
//! (FLOPs, parameters, file size, checksums, conversions, outputs) is checked by machine.
//!
//! The binary is a thin layer over this library ([`cli`]); only `cli` prints.
pub mod arch;
pub mod card;
pub mod checkpoint;
pub mod cli;
pub mod convert;
pub mod diagnostic;
pub mod diff;
pub mod docs;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod filesize;
pub mod fingerprint;
pub mod flops;
pub mod fsutil;
pub mod hub;
pub mod lookup;
pub mod mapping;
pub mod record;
pub mod reference;
pub mod registry;
pub mod report;
pub mod schema;
pub mod scratch;
pub mod source;
pub mod template;
pub mod torch;
pub mod validate;
