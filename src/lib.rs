//! zoo keeps a model zoo honest: model cards are typed data, and every claim in them
//! (FLOPs, parameters, file size, checksums, conversions, outputs) is checked by machine.
//!
//! The binary is a thin layer over this library ([`cli`]); only `cli` prints.
pub mod arch;
pub mod cli;
pub mod torch;
